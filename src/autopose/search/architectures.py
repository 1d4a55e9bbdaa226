"""Drawing network-level architectures: uniformly (before the controller learns, and for
random search) or by the ablations' rules."""

from __future__ import annotations

import torch


def uniform_scale_vectors(stages: int, branches: int, single_branch: bool,
                          generator: torch.Generator) -> torch.Tensor:
    """``(S, B)`` bool: each bit a fair coin, or (single branch) one of "none" and each
    branch, uniformly, per stage."""
    if not single_branch:
        return torch.rand(stages, branches, generator=generator) < 0.5
    out = torch.zeros(stages, branches, dtype=torch.bool)
    choice = torch.randint(0, branches + 1, (stages,), generator=generator)
    for s, c in enumerate(choice.tolist()):
        if c > 0:
            out[s, c - 1] = True
    return out


def all_branches(stages: int, branches: int) -> torch.Tensor:
    """Every branch on in every stage (the "fixed to four" ablation)."""
    return torch.ones(stages, branches, dtype=torch.bool)


def key(scale_vectors: torch.Tensor) -> tuple[tuple[int, ...], ...]:
    """A hashable form of scale vectors."""
    return tuple(tuple(int(b) for b in row) for row in scale_vectors.tolist())
