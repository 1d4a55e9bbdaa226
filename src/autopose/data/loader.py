"""DataLoaders whose worker errors reach the user as one line, not a worker traceback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import torch
from torch.utils.data import DataLoader, Dataset

from autopose.errors import UserError


def _worker_init(_: int) -> None:
    # One OpenCV thread per worker: the workers are the parallelism.
    cv2.setNumThreads(1)


def make_loader(dataset: Dataset, batch_size: int, workers: int, shuffle: bool = False,
                sampler: Any = None, drop_last: bool = False,
                generator: torch.Generator | None = None) -> DataLoader:
    if workers > 0:
        # OpenCV's thread pool is not fork-safe: a worker forked from a process whose pool
        # has run hangs on its first warp. With workers, the workers are the parallelism.
        cv2.setNumThreads(1)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, num_workers=workers, drop_last=drop_last,
                      worker_init_fn=_worker_init if workers > 0 else None,
                      persistent_workers=False, generator=generator)


def iterate(loader: DataLoader) -> Iterator[dict[str, Any]]:
    """Iterate a loader; a UserError raised in a worker is re-raised as its own one-liner."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except UserError as e:
            # The worker's message arrives wrapped in its traceback; its last line is ours.
            lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
            last = lines[-1] if lines else str(e)
            prefix = f"{UserError.__module__}.{UserError.__name__}: "
            for p in (prefix, "UserError: "):
                if last.startswith(p):
                    last = last[len(p):]
            raise UserError(last) from None
        yield batch
