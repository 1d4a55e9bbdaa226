"""A candidate architecture of the search: network-level scale vectors with the cell alphas it
is evaluated and derived with, and its plain-data form for the checkpoint (random search's
pool)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from autopose.search import architectures as archs


@dataclass
class Candidate:
    """A network-level architecture with the cell alphas it is evaluated and derived with."""

    scale_vectors: torch.Tensor  # (S, B) bool
    alpha_individual: torch.Tensor
    alpha_aggregation: torch.Tensor | None
    reward: float | None = None


def arch_key(cand: Candidate) -> tuple:
    """What makes two candidates the same network: scale vectors and argmax ops."""
    agg = cand.alpha_aggregation
    return (archs.key(cand.scale_vectors), tuple(cand.alpha_individual.argmax(-1).tolist()),
            None if agg is None else tuple(agg.argmax(-1).tolist()))


def candidate_to_dict(c: Candidate) -> dict[str, Any]:
    """Plain lists, as the checkpoint (``weights_only``) holds them."""
    agg = c.alpha_aggregation
    return {"scale_vectors": c.scale_vectors.int().tolist(),
            "alpha_individual": c.alpha_individual.tolist(),
            "alpha_aggregation": None if agg is None else agg.tolist(),
            "reward": c.reward}


def candidate_from_dict(d: dict[str, Any]) -> Candidate:
    """The inverse of ``candidate_to_dict``."""
    agg = d["alpha_aggregation"]
    return Candidate(torch.tensor(d["scale_vectors"], dtype=torch.bool),
                     torch.tensor(d["alpha_individual"]),
                     None if agg is None else torch.tensor(agg), d["reward"])
