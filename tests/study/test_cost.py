"""``autopose.study.cost``: the HRNet width search finds the grid point a full scan finds
(on real HRNet counts: tests/study/test_run.py)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from autopose.study import cost
from autopose.study.cost import WIDTH_GRID, match_width


@pytest.mark.parametrize("seed", range(4))
def test_match_width_is_the_closest_grid_point(monkeypatch: pytest.MonkeyPatch,
                                               seed: int) -> None:
    rng = random.Random(seed)
    counts = []
    for _ in range(200):
        # Any non-decreasing MACs curve: flat stretches (channels clamped to one), jumps.
        macs = sorted(rng.randint(0, rng.choice([20, 10_000])) for _ in WIDTH_GRID)
        calls = []

        def fake(arch: dict[str, Any], hw: tuple[int, int]) -> tuple[int, int]:
            calls.append(arch)
            return macs[WIDTH_GRID.index(arch.get("width_mult", 1.0))], 0

        monkeypatch.setattr(cost, "arch_cost", fake)
        target = rng.choice([rng.uniform(-5, macs[-1] + 5), float(rng.choice(macs))])
        width, got = match_width("hrnet_w32", target, (64, 48))
        assert got == macs[WIDTH_GRID.index(width)]
        assert abs(got - target) == min(abs(m - target) for m in macs), (target, got)
        counts.append(len(calls))
    assert max(counts) < 30  # a search, not a scan of 197

