"""Parameters and GFLOPs of a network, and the ``autopose flops`` command.

Convention (printed with every figure): GFLOPs = multiply-accumulates (MACs) of the conv and
linear layers for one image, / 1e9. The count comes from ``torch.utils.flop_counter``, which
counts 2 per MAC, so it is halved. One change to its formulas: a transposed conv is counted
as kernel x channels x *output* positions, as the HRNet / SimpleBaseline tables count it (the
reference figures 8.9 for SimpleBaseline-50 come from that); torch's own formula counts input
positions, a quarter of that for stride 2. Tables that divide by 1024^3 (HRNet's paper: W32
7.1) give figures 7 % lower than ours.

The count runs on the ``meta`` device: shapes only, no memory and no arithmetic, so even
HRNet-W48 at 384x288 is counted in well under a second.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from autopose.errors import UserError
from autopose.models import MODELS
from autopose.models.build import ArchSpec, build_model
from autopose.search_space.genotype import Genotype

CONVENTION = ("GFLOPs = multiply-accumulates of conv and linear layers per image / 1e9 "
              "(torch.utils.flop_counter count / 2; transposed convs counted over output "
              "positions, as in the HRNet tables; not / 1024^3)")

_aten = torch.ops.aten
_COUNTED = {"convolution", "_convolution", "cudnn_convolution", "convolution_overrideable",
            "_slow_conv2d_forward", "mm", "addmm", "bmm", "baddbmm"}


def _conv_flop(x_shape: list[int], w_shape: list[int], _bias: Any, _stride: Any, _padding: Any,
               _dilation: Any, transposed: bool, *args: Any, out_shape: list[int] | None = None,
               **kwargs: Any) -> int:
    # Output positions for plain and transposed convs alike; prod(w_shape) is the same
    # C_in * C_out/groups * k * k either way round.
    return conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


def count_macs(model: nn.Module, input_hw: tuple[int, int], batch: int = 1,
               device: torch.device | str | None = None,
               forward: Callable[[nn.Module, torch.Tensor], Any] | None = None) -> int:
    """Multiply-accumulates of conv and linear layers for one forward of ``batch`` images.

    The model is run in eval mode under no_grad on ``device`` (default: the model's).
    """
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else "cpu"
    was_training = model.training
    model.eval()
    x = torch.zeros(batch, 3, *input_hw, device=device)
    counter = FlopCounterMode(display=False, custom_mapping={_aten.convolution: _conv_flop,
                                                             _aten._convolution: _conv_flop})
    try:
        with torch.no_grad(), counter:
            (forward or (lambda m, t: m(t)))(model, x)
    finally:
        model.train(was_training)
    total = 0
    for op, n in counter.get_flop_counts().get("Global", {}).items():
        name = getattr(op, "__name__", str(op)).split(".")[0]
        if name in _COUNTED:
            total += n
    return total // 2


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parse_input_size(text: str) -> tuple[int, int]:
    """``"256x192"`` -> ``(256, 192)`` (height, width)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise UserError(f"--input: expected HEIGHTxWIDTH such as 256x192, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def build_for_count(model: str, num_joints: int = 17) -> nn.Module:
    """A baseline by name, or the derived network of a genotype.json (its own width_mult).

    Built on the meta device: parameter counts and FLOPs need shapes only.
    """
    path = Path(model)
    if model in MODELS:
        spec = ArchSpec.baseline(model, num_joints)
    elif path.suffix == ".json" or path.exists():
        spec = ArchSpec.derived(Genotype.load(path), None, num_joints)
    else:
        raise UserError(f"--model: unknown model {model!r} "
                        f"(known: {', '.join(MODELS)}, or the path of a genotype.json)")
    with torch.device("meta"):
        return build_model(spec)


def flops_report(model: str, input: str = "256x192") -> dict[str, Any]:
    """The ``autopose flops --json`` object for ``model`` at ``input``."""
    hw = parse_input_size(input)
    net = build_for_count(model)
    params = count_params(net)
    macs = count_macs(net, hw, device="meta")
    return {"model": model, "input": f"{hw[0]}x{hw[1]}", "params": params,
            "params_m": round(params / 1e6, 3), "gflops": round(macs / 1e9, 3),
            "convention": CONVENTION}


def run_flops_command(model: str, input: str, as_json: bool) -> int:
    """``autopose flops``: print parameters and GFLOPs (one JSON object with ``--json``)."""
    report = flops_report(model, input)
    if as_json:
        print(json.dumps(report))
    else:
        print(f"model       {report['model']}")
        print(f"input       {report['input']} (one image)")
        print(f"params      {report['params']:,} ({report['params'] / 1e6:.2f} M)")
        print(f"GFLOPs      {report['gflops']:.2f}")
        print(f"convention  {report['convention']}")
    return 0
