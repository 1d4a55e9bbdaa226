"""A resumable epoch sampler: the order of an epoch is a function of (seed, epoch) alone."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """A seeded permutation of ``range(n)`` for ``epoch``, started at position ``start``.

    Resuming mid-epoch at iteration ``it`` with batch size ``b`` is ``start = it * b``: the
    batches that follow are those an uninterrupted run would have drawn. ``rank`` and
    ``world`` take every ``world``-th index, so processes share an epoch without overlap.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()[self.rank::self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start:])

    def __len__(self) -> int:
        return max(0, len(range(self.rank, self.n, self.world)) - self.start)
