"""HRNet pose networks (HRNet-W32, HRNet-W48), the hand-designed baselines of the paper.

Architecture as published for pose estimation: a stem of two 3x3 stride-2 convs, four
bottlenecks (64 -> 256) at 1/4, then stages 2, 3, 4 with 2, 3, 4 branches (widths C, 2C, 4C,
8C) and 1, 4, 3 modules; each module has 4 basic blocks per branch and a fuse layer (up: 1x1
conv-BN then nearest upsampling; down: 3x3 stride-2 conv-BN per factor 2, ReLU between). The
last module keeps only the highest-resolution output, and a 1x1 conv maps it to K heatmaps.
Written from that description; the numbers to match are 28.5 M parameters (W32) and 63.6 M
(W48).

``width_mult`` (``train.width_mult`` for ``--model hrnet_w32|hrnet_w48``) scales every channel
count (the stem's 64, the bottlenecks' 256 and 64, each branch width C * 2^k) and rounds it to
whole channels, at least one: a width-reduced HRNet with the same topology, e.g. to match the
FLOPs of a derived network. At 1 the network (and its state dict) is the published one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autopose.models.derived import scale_channels
from autopose.search_space.ops import ConvBN, heatmap_conv


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN with an identity shortcut: ``(N, C, H, W) -> (N, C, H, W)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(channels, channels, 3)
        self.conv2 = ConvBN(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 with 4x expansion, projection shortcut when shapes change.

    ``(N, C_in, H, W) -> (N, out, H / stride, W / stride)``, ``out`` 4 * planes by default.
    """

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, out: int | None = None) -> None:
        super().__init__()
        # ``out`` is given for a width-reduced HRNet, where 256 and 64 are rounded separately.
        out = planes * self.expansion if out is None else out
        self.conv1 = ConvBN(c_in, planes, 1)
        self.conv2 = ConvBN(planes, planes, 3, stride)
        self.conv3 = ConvBN(planes, out, 1)
        self.downsample = ConvBN(c_in, out, 1, stride) if stride != 1 or c_in != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv1(x))
        y = F.relu(self.conv2(y))
        y = self.conv3(y)
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class HRModule(nn.Module):
    """One high-resolution module: basic blocks per branch, then full cross-scale fusion.

    ``outputs``: how many fused outputs to produce (all branches, or 1 in the last module).
    """

    def __init__(self, channels: list[int], blocks: int, outputs: int) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList([nn.Sequential(*[BasicBlock(c) for _ in range(blocks)])
                                       for c in channels])
        self.fuse = nn.ModuleList()
        for i in range(outputs if n > 1 else 0):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:
                    row.append(ConvBN(channels[j], channels[i], 1))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    layers: list[nn.Module] = []
                    for s in range(i - j):
                        last = s == i - j - 1
                        c_out = channels[i] if last else channels[j]
                        layers.append(ConvBN(channels[j], c_out, 3, 2))
                        if not last:
                            layers.append(nn.ReLU(inplace=True))
                    row.append(nn.Sequential(*layers))
            self.fuse.append(row)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """``[(N, C_k, H_k, W_k)]`` -> the first ``outputs`` of the same shapes."""
        xs = [b(x) for b, x in zip(self.branches, xs)]
        if len(xs) == 1:
            return xs
        out = []
        for i, row in enumerate(self.fuse):
            size = xs[i].shape[-2:]
            y = xs[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                z = layer(xs[j])
                if j > i:
                    z = F.interpolate(z, size=size, mode="nearest")
                y = y + z
            out.append(F.relu(y))
        return out


class HRNetPose(nn.Module):
    """HRNet-W``width`` for top-down pose: ``(N, 3, H, W) -> (N, K, H/4, W/4)``.

    ``width_mult`` scales every channel count (rounded, at least 1); 1 is the published net.
    """

    def __init__(self, width: int = 32, num_joints: int = 17,
                 modules: tuple[int, int, int] = (1, 4, 3), blocks: int = 4,
                 width_mult: float = 1.0) -> None:
        super().__init__()
        if not width_mult > 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        self.width_mult = float(width_mult)
        stem = scale_channels(64, width_mult)
        planes = scale_channels(64, width_mult)
        expanded = scale_channels(256, width_mult)
        self.conv1 = nn.Sequential(ConvBN(3, stem, 3, 2), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(ConvBN(stem, stem, 3, 2), nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(Bottleneck(stem, planes, out=expanded),
                                    *[Bottleneck(expanded, planes, out=expanded)
                                      for _ in range(3)])
        prev = [expanded]
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        for s, n_modules in enumerate(modules):
            channels = [scale_channels(width * 2 ** k, width_mult) for k in range(s + 2)]
            self.transitions.append(self._transition(prev, channels))
            last_stage = s == len(modules) - 1
            self.stages.append(nn.Sequential(*[
                HRModule(channels, blocks,
                         1 if last_stage and m == n_modules - 1 else len(channels))
                for m in range(n_modules)]))
            prev = channels
        self.final = heatmap_conv(prev[0], num_joints)

    @staticmethod
    def _transition(prev: list[int], channels: list[int]) -> nn.ModuleList:
        """Per new branch: None-like identity, a 3x3 conv when widths differ, or a stride-2
        conv from the coarsest existing branch for a new branch."""
        layers = nn.ModuleList()
        for i, c in enumerate(channels):
            if i < len(prev):
                layers.append(nn.Sequential(ConvBN(prev[i], c, 3), nn.ReLU(inplace=True))
                              if prev[i] != c else nn.Identity())
            else:
                layers.append(nn.Sequential(ConvBN(prev[-1], c, 3, 2), nn.ReLU(inplace=True)))
        return layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W) -> (N, K, H/4, W/4)``."""
        x = self.layer1(self.conv2(self.conv1(x)))
        xs = [x]
        for transition, stage in zip(self.transitions, self.stages):
            n_prev = len(xs)
            xs = [transition[i](xs[i] if i < n_prev else xs[-1]) for i in range(len(transition))]
            xs = stage(xs)
        return self.final(xs[0])


def hrnet_w32(num_joints: int = 17, width_mult: float = 1.0) -> HRNetPose:
    """HRNet-W32 pose network (28.5 M parameters with 17 joints at width_mult 1)."""
    return HRNetPose(32, num_joints, width_mult=width_mult)


def hrnet_w48(num_joints: int = 17, width_mult: float = 1.0) -> HRNetPose:
    """HRNet-W48 pose network (63.6 M parameters with 17 joints at width_mult 1)."""
    return HRNetPose(48, num_joints, width_mult=width_mult)
