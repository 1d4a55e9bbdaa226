"""Networks: the derived AutoPose network (built from a genotype) and hand-designed baselines.

``MODELS`` maps a baseline's name to its builder, ``builder(num_joints=17) -> nn.Module``;
the builders of ``WIDTH_MULT_MODELS`` also take ``width_mult`` (every channel count scaled,
``train.width_mult`` of ``autopose train --model``). A derived network is built with
:func:`autopose.models.derived.build_derived`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from autopose.models.hrnet import hrnet_w32, hrnet_w48
from autopose.models.simple_baseline import simple_baseline_50

MODELS: dict[str, Callable[..., nn.Module]] = {
    "hrnet_w32": hrnet_w32,
    "hrnet_w48": hrnet_w48,
    "simple_baseline_50": simple_baseline_50,
}

# Baselines whose builder takes ``width_mult`` (a width-reduced HRNet for FLOPs-matched
# comparisons, as in the paper's tables); SimpleBaseline keeps its published widths.
WIDTH_MULT_MODELS: frozenset[str] = frozenset({"hrnet_w32", "hrnet_w48"})
