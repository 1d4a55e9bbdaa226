"""Candidate operations on a cell edge (paper section 3.1.2; SPEC section 2).

Every operation keeps the channel count and the spatial size: a cell edge maps a
``(N, C, H, W)`` tensor to a ``(N, C, H, W)`` tensor. Resolution changes happen only in the
aggregation cell's resampling (``cells.Resample``), never on an edge, so any op can sit on any
edge of any branch.

``OPS`` is a plain dict from the op name used in configs and genotype files to the class;
each class is built as ``OPS[name](channels, affine)``. ``affine=False`` (the supernet's, as
in DARTS) gives the op's BatchNorm no learnable scale and shift: with one, the hard weight
step can shrink an op's output through its BN scale, and the alpha gradient then compares
ops by their BN scales rather than by what they compute. Derived networks use ``affine=True``;
a no-affine BN is an affine one with scale 1 and shift 0, which is how supernet weights copy
into them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autopose.errors import UserError


class ConvBN(nn.Sequential):
    """Conv (no bias, BN follows) then BN: ``(N, C_in, H, W) -> (N, C_out, H', W')``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size, stride, padding, dilation=dilation,
                      groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
        )


def heatmap_conv(c_in: int, num_joints: int) -> nn.Conv2d:
    """The final 1x1 conv to K heatmaps, initialised as HRNet's: normal with std 1e-3, zero bias.

    With PyTorch's default init the untrained head's output has an RMS of about 0.4, worse than
    an all-zero heatmap (loss 0.023 against 0.008 on the built-in set), and networks sat on the
    average-pose plateau for a seed-dependent number of epochs (docs/training.md).
    """
    conv = nn.Conv2d(c_in, num_joints, 1)
    nn.init.normal_(conv.weight, std=1e-3)
    nn.init.zeros_(conv.bias)
    return conv


class ReLUConvBN(nn.Module):
    """ReLU -> k x k conv -> BN, the DARTS-style pre-activation convolution op.

    Pre-activation because cell outputs end in BN without ReLU; the next op applies it.
    """

    kernel_size = 3

    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__()
        k = self.kernel_size
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, k, 1, k // 2, bias=False),
            nn.BatchNorm2d(channels, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        return self.op(x)


class Conv1x1(ReLUConvBN):
    kernel_size = 1


class Conv3x3(ReLUConvBN):
    kernel_size = 3


class Conv5x5(ReLUConvBN):
    kernel_size = 5


class SepConv3x3(nn.Module):
    """ReLU -> depthwise 3x3 -> pointwise 1x1 -> BN (one separable layer, not DARTS's two)."""

    dilation = 1

    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__()
        d = self.dilation
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, 3, 1, d, dilation=d, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        return self.op(x)


class DilConv3x3(SepConv3x3):
    """Separable 3x3 with dilation 2: a 5x5 receptive field at 3x3 cost."""

    dilation = 2


def _native_pooling(x: torch.Tensor) -> bool:
    """Whether torch's own pooling kernels serve ``x``: off the CPU, and during ONNX export
    (the exporter drops ``divisor_override`` of the separable form)."""
    return x.device.type != "cpu" or torch.onnx.is_in_onnx_export()


def _max_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 max pooling, padding 1: ``(N, C, H, W) -> (N, C, H, W)``.

    On the CPU without a gradient to compute, this separable form (row maxima, then column
    maxima) gives identical values several times faster than torch's max_pool2d (3.4x in
    channels-last for a (32, 8, 32, 24) tensor, one thread). Its backward is slower, though
    (10 ms against 1.9 ms for a (16, 8, 32, 24) channels-last tensor), so training steps use
    the native kernel, as the GPU and ONNX export always do.
    """
    if _native_pooling(x) or (torch.is_grad_enabled() and x.requires_grad):
        return F.max_pool2d(x, 3, 1, 1)
    y = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
    r = torch.maximum(torch.maximum(y[..., :, :-2], y[..., :, 1:-1]), y[..., :, 2:])
    return torch.maximum(torch.maximum(r[..., :-2, :], r[..., 1:-1, :]), r[..., 2:, :])


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pooling, padding 1, padding excluded from the count.

    On the CPU, separable sums divided by the per-pixel window count (9 inside, 6 on edges, 4
    in corners) are faster than torch's avg_pool2d, forward and backward, in either layout
    (1.3 ms against 2.6 ms for a (16, 8, 32, 24) channels-last tensor, one thread).
    """
    if _native_pooling(x):
        return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    h, w = x.shape[-2:]
    y = F.pad(x, (1, 1, 1, 1))
    r = y[..., :, :-2] + y[..., :, 1:-1] + y[..., :, 2:]
    total = r[..., :-2, :] + r[..., 1:-1, :] + r[..., 2:, :]
    ones = torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device)
    count = F.avg_pool2d(ones, 3, 1, 1, count_include_pad=True, divisor_override=1)
    return total / count


class AvgPool3x3(nn.Module):
    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``; padding excluded, so borders are not pulled to 0."""
        return _avg_pool_3x3(x)


class MaxPool3x3(nn.Module):
    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        return _max_pool_3x3(x)


class Skip(nn.Module):
    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``, the input itself."""
        return x


OPS: dict[str, type[nn.Module]] = {
    "conv_1x1": Conv1x1,
    "conv_3x3": Conv3x3,
    "conv_5x5": Conv5x5,
    "avg_pool_3x3": AvgPool3x3,
    "max_pool_3x3": MaxPool3x3,
    "skip": Skip,
    "sep_conv_3x3": SepConv3x3,
    "dil_conv_3x3": DilConv3x3,
}


def check_ops(ops: list[str], where: str = "model.ops") -> list[str]:
    """Return ``ops`` after checking it is a non-empty list of known, distinct op names."""
    if not isinstance(ops, list) or not ops:
        raise UserError(f"{where}: expected a non-empty list of operation names")
    for i, name in enumerate(ops):
        if not isinstance(name, str) or name not in OPS:  # a list is not even hashable
            raise UserError(f"{where}[{i}]: unknown operation {name!r} "
                            f"(known: {', '.join(OPS)})")
    if len(set(ops)) != len(ops):
        raise UserError(f"{where}: an operation is listed twice: {ops}")
    return list(ops)
