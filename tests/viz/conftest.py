"""One torch thread per test in this directory, restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # These tests use tiny tensors, which gain nothing from a second thread; and when other
    # jobs share the two cores, preempted OpenMP threads spin at every barrier, which made the
    # directory 4x slower (186 s against 42 s with one thread, same load).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
