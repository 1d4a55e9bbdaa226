"""Search strategies: what a search samples, learns and derives from, at the few points where
``BilevelSearch``'s loop asks.

- ``AutoPoseStrategy`` (the paper's): after the warm-up the controller learns the network level
  by REINFORCE at the end of each period; the alpha step learns the cells.
- ``RandomStrategy`` (``--strategy random``): the same budget and evaluation, with both
  learners replaced by uniform sampling; it re-scores its whole pool on the final weights.
- ``AllBranchesStrategy``: ``search.branches: all`` under AutoPose, the "fixed to four"
  ablation; every branch on, the controller idle, the cells still learnt by the alpha step.
  Random search needs no such class: uniform over the fixed ``BranchSpace`` is its one member.

A strategy reads and writes the search's state (``search.state``) and uses its architecture
tools (``current``, ``_random_candidate``, ``evaluate_cached``); it owns no state of its own,
so the checkpoint is the search's alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from autopose.engine import distributed as ddp
from autopose.errors import UserError
from autopose.search import architectures as archs
from autopose.search.candidates import Candidate, candidate_from_dict, candidate_to_dict
from autopose.search.controller import policy_entropy

if TYPE_CHECKING:  # for the annotations only: bilevel.py imports this module
    from autopose.search.bilevel import BilevelSearch


class Strategy(ABC):
    """What one search strategy answers; ``BilevelSearch`` runs the loop around it."""

    # Whether the alpha step runs, i.e. the cells are learnt by gradient.
    alpha_step: bool

    def __init__(self, search: BilevelSearch):
        self.search = search

    def learning(self, epoch: int) -> bool:
        """Whether the warm-up is over by ``epoch``: the controller learns (AutoPose), or
        random search evaluates, at the end of this period. Never in a fixed space: it has
        no network level to learn."""
        start = self.search.state.controller_start
        return not self.search.space.fixed and start is not None and epoch >= start

    def rewards_most_likely(self, epoch: int) -> bool:
        """Whether the end of period ``epoch`` rewards the most likely architecture. During
        the warm-up the policy has not learnt: its most likely architecture is noise, and its
        reward would cost an evaluation for nothing. A fixed space's one member is the most
        likely from the start."""
        return self.learning(epoch) or self.search.space.fixed

    @abstractmethod
    def sample(self, epoch: int) -> torch.Tensor:
        """``(S, B)`` bool: the scale vectors of one weight (and alpha) step of period
        ``epoch``, on this rank (the search broadcasts rank 0's)."""

    @abstractmethod
    def end_of_period(self, epoch: int, cache: dict[Any, float]) -> dict[str, Any]:
        """The learning at the end of period ``epoch``, with rewards through ``cache`` (the
        weights do not change here); its log fields ``controller_updates``, ``rewards`` and
        ``baseline``."""

    @abstractmethod
    def most_likely(self) -> Candidate:
        """The architecture the strategy believes best now, with the current cells."""

    @abstractmethod
    def policy_entropy(self) -> float:
        """Entropy (nats) of the network-level policy."""

    @abstractmethod
    def derive_candidates(self) -> list[Candidate]:
        """The candidates the final architecture is picked from, on the final weights."""


def _no_learning() -> dict[str, Any]:
    return {"controller_updates": 0, "rewards": [], "baseline": None}


class AutoPoseStrategy(Strategy):
    """Controller by REINFORCE after the warm-up, cells by the alpha step; derived from the
    most likely architecture and ``search.derive_samples`` samples of the policy."""

    alpha_step = True

    def sample(self, epoch: int) -> torch.Tensor:
        s = self.search
        if self.learning(epoch) and s.cfg.search.weight_sampling == "policy":
            with torch.no_grad():
                return s.controller.sample(s.arch_gen).scale_vectors
        return s.space.uniform(s.arch_gen)

    def end_of_period(self, epoch: int, cache: dict[Any, float]) -> dict[str, Any]:
        """``updates_per_epoch`` controller updates, each on ``archs_per_update`` sampled
        architectures (rank 0's samples, so every rank updates alike)."""
        s, c = self.search, self.search.cfg.search.controller
        out = _no_learning()
        if not self.learning(epoch):
            return out
        for _ in range(c.updates_per_epoch):
            svs = ddp.broadcast_object([s.controller.sample(s.arch_gen).scale_vectors
                                        for _ in range(c.archs_per_update)])
            rewards = [s.evaluate_cached(s.current(sv), cache) for sv in svs]
            s.rl.update(svs, rewards)
            out["rewards"] += rewards
            out["controller_updates"] += 1
        out["baseline"] = s.rl.baseline
        return out

    def most_likely(self) -> Candidate:
        with torch.no_grad():
            return self.search.current(self.search.controller.most_likely().scale_vectors)

    def policy_entropy(self) -> float:
        return policy_entropy(self.search.controller)

    def derive_candidates(self) -> list[Candidate]:
        s = self.search
        cands = [self.most_likely()]
        for _ in range(s.cfg.search.derive_samples):
            with torch.no_grad():
                cands.append(s.current(s.controller.sample(s.arch_gen).scale_vectors))
        return cands


class AllBranchesStrategy(Strategy):
    """``search.branches: all`` under AutoPose: every branch on in every stage, no controller
    update; the alpha step still learns the cells, derived from that one architecture."""

    alpha_step = True

    def _all(self) -> torch.Tensor:
        space = self.search.space
        return archs.all_branches(space.stages, space.branches)

    def sample(self, epoch: int) -> torch.Tensor:
        return self._all()

    def end_of_period(self, epoch: int, cache: dict[Any, float]) -> dict[str, Any]:
        return _no_learning()

    def most_likely(self) -> Candidate:
        return self.search.current(self._all())

    def policy_entropy(self) -> float:
        return 0.0

    def derive_candidates(self) -> list[Candidate]:
        return [self.most_likely()]


class RandomStrategy(Strategy):
    """Uniform scale vectors for every step and no alpha step. After the warm-up each period
    scores as many uniformly random candidates (scale vectors and, through random alphas,
    cells) as AutoPose's updates would, into the pool; derivation scores the pool again on
    the final weights (its rewards came from supernets of different ages), with
    ``search.derive_samples`` fresh random candidates."""

    alpha_step = False

    def sample(self, epoch: int) -> torch.Tensor:
        return self.search.space.uniform(self.search.arch_gen)

    def end_of_period(self, epoch: int, cache: dict[Any, float]) -> dict[str, Any]:
        s, c = self.search, self.search.cfg.search.controller
        out = _no_learning()
        if not self.learning(epoch):
            return out
        for _ in range(c.updates_per_epoch * c.archs_per_update):
            cand = s._random_candidate()
            out["rewards"].append(s.evaluate_cached(cand, cache))
            s.state.pool.append(candidate_to_dict(cand))
        return out

    def most_likely(self) -> Candidate:
        """The pool's best so far; before there is a pool, one fixed uniform draw."""
        pool = [candidate_from_dict(d) for d in self.search.state.pool]
        if pool:
            return max(pool, key=lambda c: c.reward)
        # Its own generator: asking must not move the search's architecture RNG.
        gen = torch.Generator().manual_seed(self.search.cfg.seed)
        return self.search.current(self.search.space.uniform(gen))

    def policy_entropy(self) -> float:
        return self.search.space.uniform_entropy()

    def derive_candidates(self) -> list[Candidate]:
        s = self.search
        cands = [self.most_likely()]
        cands += [s._random_candidate() for _ in range(s.cfg.search.derive_samples)]
        return cands + [candidate_from_dict(d) for d in s.state.pool]


# The --strategy values.
STRATEGIES: dict[str, type[Strategy]] = {"autopose": AutoPoseStrategy, "random": RandomStrategy}


def check_strategy(name: str) -> None:
    """UserError unless ``name`` is a ``--strategy`` value (checked before anything is built)."""
    if name not in STRATEGIES:
        raise UserError(f"--strategy: expected one of {', '.join(STRATEGIES)}, got {name!r}")


def make_strategy(name: str, search: BilevelSearch) -> Strategy:
    """The strategy of ``--strategy name`` (a checked value) for ``search``; AutoPose in a
    fixed branch space (``search.branches: all``) is ``AllBranchesStrategy``."""
    if name == "autopose" and search.space.fixed:
        return AllBranchesStrategy(search)
    return STRATEGIES[name](search)
