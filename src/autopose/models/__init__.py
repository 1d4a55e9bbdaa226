"""Networks: the derived AutoPose network (built from a genotype) and hand-designed baselines.

``MODELS`` maps a baseline's name to its builder, ``builder(num_joints=17) -> nn.Module``;
a derived network is built with :func:`autopose.models.derived.build_derived`.
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
