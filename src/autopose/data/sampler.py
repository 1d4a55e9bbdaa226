"""A resumable sampler: the order of an epoch is a function of (seed, epoch) alone."""

from __future__ import annotations

from torch.utils.data import Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """A DistributedSampler whose epoch can start part way through (for ``--resume``).

    The order of epoch ``e`` is DistributedSampler's: a permutation drawn from a generator
    seeded with ``seed + e``, padded to a multiple of the world size and strided by rank, so it
    is a function of (seed, epoch) alone. ``set_position(e, start)`` skips the first ``start``
    indices of this rank's share: exactly the batches a killed run had already trained on.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                         seed=seed, drop_last=False)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self):  # type: ignore[override]
        return iter(list(super().__iter__())[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
