"""What a trained network costs (GFLOPs and parameters at the training input size), and the
HRNet width whose FLOPs match the mean of a row's derived networks.

Networks are built on the meta device: shapes only, no weights and no arithmetic, so each
count takes milliseconds to a second.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from autopose.config import load_config

# The built-in synthetic set has COCO's 17 joints; the head's 1x1 conv is a negligible share
# of the FLOPs anyway, so the HRNet match does not depend on it.
NUM_JOINTS = 17
# HRNet width multipliers tried for the FLOPs match: 0.02 .. 1.0 in steps of 0.005 (below
# 0.02 most channel counts are already clamped to one).
WIDTH_GRID: tuple[float, ...] = tuple(round(0.02 + 0.005 * i, 3) for i in range(197))


def arch_cost(arch: dict[str, Any], input_hw: tuple[int, int]) -> tuple[int, int]:
    """``(MACs, parameters)`` of the network an ``arch`` entry describes, at ``input_hw``."""
    import torch

    from autopose.models.build import build_model
    from autopose.models.flops import count_macs, count_params

    with torch.device("meta"):
        net = build_model(arch)
    return count_macs(net, input_hw, device="meta"), count_params(net)


def checkpoint_cost(path: Path) -> dict[str, Any]:
    """GFLOPs and parameters of a checkpoint's network at its own training input size."""
    from autopose.engine.checkpoint import read_checkpoint
    from autopose.models.build import describe_arch

    ckpt = read_checkpoint(path)
    hw = tuple(int(v) for v in ckpt["config"]["data"]["input_size"])
    macs, params = arch_cost(ckpt["arch"], hw)  # type: ignore[arg-type]
    return {"gflops": macs / 1e9, "params": params, "params_m": params / 1e6,
            "input_size": list(hw), "network": describe_arch(ckpt["arch"]),
            "width_mult": float(ckpt["arch"].get("width_mult", 1.0))}


def derived_macs(train_config: Path, overrides: list[str],
                 genotype: Path) -> tuple[int, tuple[int, int]]:
    """MACs of the network ``autopose train`` builds from ``genotype`` with the training
    config (its ``train.width_mult``), at the training input size; and that size."""
    from autopose.models.build import ArchSource, resolve_arch

    cfg = load_config(train_config, overrides)
    hw = (int(cfg.data.input_size[0]), int(cfg.data.input_size[1]))
    arch = resolve_arch(ArchSource(genotype=genotype), cfg, NUM_JOINTS)
    return arch_cost(arch, hw)[0], hw


def match_width(baseline: str, target_macs: float,
                input_hw: tuple[int, int]) -> tuple[float, int]:
    """The multiplier of WIDTH_GRID whose ``baseline`` MACs are closest to ``target_macs``.

    MACs never decrease with the multiplier (every channel count is a non-decreasing
    function of it), so the crossing is found by a search on the grid: from a first guess
    (convolution MACs grow about as the square of the width), galloping to bracket the
    target, then bisecting. About 5 counts of half a second each for HRNet, not 197.
    """
    from autopose.models.build import arch_for_baseline

    cache: dict[int, int] = {}

    def macs(i: int) -> int:
        if i not in cache:
            cache[i] = arch_cost(arch_for_baseline(baseline, NUM_JOINTS, WIDTH_GRID[i]),
                                 input_hw)[0]
        return cache[i]

    top = len(WIDTH_GRID) - 1
    if macs(top) <= target_macs:
        return WIDTH_GRID[top], macs(top)
    guess = WIDTH_GRID[top] * math.sqrt(max(target_macs, 0) / macs(top))
    start = min(range(top + 1), key=lambda i: abs(WIDTH_GRID[i] - guess))
    # Bracket: macs(lo) < target <= macs(hi), lo = -1 when even the narrowest is above it.
    lo, hi, step = start, start, 1
    if macs(start) >= target_macs:
        while lo >= 0 and macs(lo) >= target_macs:
            hi, lo, step = lo, max(lo - step, -1), step * 2
    else:
        while macs(hi) < target_macs:  # ends: macs(top) > target
            lo, hi, step = hi, min(hi + step, top), step * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if macs(mid) >= target_macs:
            hi = mid
        else:
            lo = mid
    best = hi if lo < 0 else min((lo, hi), key=lambda i: abs(macs(i) - target_macs))
    return WIDTH_GRID[best], macs(best)
