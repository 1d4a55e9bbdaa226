"""``autopose export``: a checkpoint's network as an ONNX model, checked against PyTorch.

The model maps normalised images ``images (N, 3, H, W)`` float32 (RGB, ImageNet mean and std,
as :func:`~autopose.data.transforms.normalize_batch` makes them) to ``heatmaps
(N, K, H/4, W/4)``; the batch axis is dynamic, H and W are fixed at export (default: the
checkpoint's ``data.input_size``). Before the file is written, ONNX Runtime runs it on a random
input and its output must match PyTorch's within 1e-4 (largest absolute difference); a model
that fails this is not written. The file's metadata holds what ``autopose infer`` needs to run
it as it runs the checkpoint (:func:`infer_metadata`). Needs the packages ``onnx`` and
``onnxruntime`` (``pip install 'autopose[export]'``).
"""

from __future__ import annotations

import json
import io
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autopose.config import config_from_dict, to_dict
from autopose.engine.checkpoint import checkpoint_config, load_model
from autopose.errors import UserError
from autopose.io import atomic_write, check_writable, clear_stale_temps
from autopose.models.build import describe_arch

TOLERANCE = 1e-4
OPSET = 17
# The metadata autopose infer reads (infer_metadata); version 1 (no version key) had only
# the descriptive keys, which name the codec but do not hold its settings.
METADATA_VERSION = 2
METADATA_KEYS = {"version": "autopose.metadata_version", "config": "autopose.config",
                 "keypoints": "autopose.keypoint_layout"}


def require_onnx(who: str = "autopose export", with_onnx: bool = True,
                 otherwise: str = "") -> Any:
    """The ``onnxruntime`` module, after importing ``onnx`` too unless ``with_onnx`` is
    False; else one line: ``who``, the missing package, how to install it, and
    ``otherwise`` (another way out, such as ", or use --backend torch")."""
    try:
        if with_onnx:
            import onnx  # noqa: F401
        import onnxruntime
    except ImportError as e:
        missing = getattr(e, "name", None) or "onnxruntime"
        raise UserError(f"{who}: the package {missing!r} is not installed; install the export "
                        "extra: pip install 'autopose[export]' (or: pip install onnx "
                        f"onnxruntime){otherwise}") from None
    return onnxruntime


def _require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or the one line of :func:`require_onnx`."""
    ort = require_onnx()
    import onnx

    return onnx, ort


def parse_input(text: str | None, default: list[int]) -> tuple[int, int]:
    """``"256x192"`` -> (256, 192); None -> ``default``."""
    if text is None:
        return int(default[0]), int(default[1])
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 8 or int(m.group(2)) < 8:
        raise UserError(f"--input: expected HEIGHTxWIDTH such as 256x192, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def to_onnx_bytes(model: torch.nn.Module, input_hw: tuple[int, int], opset: int = OPSET) -> bytes:
    """Trace ``model`` (eval mode, CPU) into ONNX bytes with a dynamic batch axis.

    Uses the TorchScript-based exporter (``dynamo=False``): it needs no ``onnxscript`` and
    handles these fixed-shape convolutional networks exactly.
    """
    example = torch.zeros(1, 3, *input_hw)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation, and the tracer notes the
        # Python shape checks it folds into constants: neither changes the exported graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=["heatmaps"],
                          dynamic_axes={"images": {0: "batch"}, "heatmaps": {0: "batch"}},
                          do_constant_folding=True)
    return buf.getvalue()


def check_onnx(data: bytes, model: torch.nn.Module, input_hw: tuple[int, int],
               seed: int = 0, batch: int = 2) -> float:
    """Largest ``|onnxruntime - torch|`` on a random normal input ``(batch, 3, H, W)``, after
    the ONNX checker has passed the model."""
    onnx, ort = _require_onnx()
    onnx.checker.check_model(onnx.load_from_string(data))
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session_diff(session, model, input_hw, seed, batch)


def session_diff(session: Any, model: torch.nn.Module, input_hw: tuple[int, int],
                 seed: int = 0, batch: int = 2) -> float:
    """Largest ``|onnxruntime - torch|`` of an ONNX Runtime ``session`` of ``model`` (on the
    CPU, eval mode) on a random normal input ``(batch, 3, H, W)``; needs only onnxruntime."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, *input_hw, generator=g)
    with torch.no_grad():
        want = model(x).numpy()
    got = session.run(["heatmaps"], {"images": x.numpy()})[0]
    if got.shape != want.shape:
        raise UserError(f"export check: ONNX output shape {got.shape} != PyTorch's {want.shape}")
    return float(np.max(np.abs(got - want)))


def require_close(diff: float, source: Path, then: str) -> None:
    """One line unless ``diff`` (the largest ``|onnxruntime - torch|``) is within
    :data:`TOLERANCE`; ``then`` says what follows (NaN is not within)."""
    if not diff <= TOLERANCE:
        raise UserError(f"{source}: export check failed: ONNX Runtime and PyTorch differ by "
                        f"{diff:.3g} > {TOLERANCE:g} on a random input; {then}")


def _codec_note(data: Any) -> str:
    """``data`` (a DataConfig): the codec the heatmaps decode with."""
    note = f"{data.codec}, sigma {data.sigma}"
    return note + (f", blur kernel {data.blur_kernel}" if data.codec == "dark" else "")


def infer_metadata(ckpt: dict[str, Any], checkpoint: Path, hw: tuple[int, int]
                   ) -> dict[str, str]:
    """What ``autopose infer`` needs to run the exported model as it runs the checkpoint.

    ``autopose.config``: the checkpoint's resolved config (JSON) with ``data.input_size`` the
    exported input (codec, flip test, box padding, OKS-NMS threshold, batch size);
    ``autopose.keypoint_layout``: the checkpoint's keypoint layout (names, flip pairs, OKS
    sigmas, skeleton). Files exported before these keys (``autopose.metadata_version`` 1,
    absent) are refused by infer with a line that says to export again.
    """
    tree = to_dict(checkpoint_config(ckpt, checkpoint))
    tree["data"]["input_size"] = [int(hw[0]), int(hw[1])]
    # Checked now, as infer will read it: an --input the codec cannot use (a side not
    # divisible by the heatmap stride) is refused here, not in a file that never runs.
    config_from_dict(tree, "--input")
    return {METADATA_KEYS["version"]: str(METADATA_VERSION),
            METADATA_KEYS["config"]: json.dumps(tree),
            METADATA_KEYS["keypoints"]: json.dumps(ckpt["keypoints"])}


def _add_metadata(data: bytes, meta: dict[str, str]) -> bytes:
    onnx, _ = _require_onnx()
    proto = onnx.load_from_string(data)
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    return proto.SerializeToString()


def check_export_out(out: Path) -> None:
    """``--out`` is a new file in a folder that can be written: an existing file (an earlier
    export, or a run's checkpoint) is never replaced. A killed export's temporary is removed."""
    if out.is_dir():
        raise UserError(f"{out}: --out: is a folder; give the .onnx file to write")
    if out.exists():
        raise UserError(f"{out}: --out: exists; autopose export never replaces a file (give "
                        "a new --out, or delete it)")
    check_writable(out.parent)
    clear_stale_temps(out.parent, out.name)


def run_export_command(checkpoint: Path, fmt: str, out: Path | None,
                       input_size: str | None = None) -> dict[str, Any]:
    """``autopose export``; returns ``{"out", "max_abs_diff", "input"}``."""
    if fmt != "onnx":
        raise UserError(f"--format: only onnx is supported, got {fmt!r}")
    _require_onnx()
    out = Path(out) if out else Path(checkpoint).with_suffix(".onnx")
    check_export_out(out)
    model, ckpt = load_model(checkpoint, torch.device("cpu"))
    hw = parse_input(input_size, ckpt["config"]["data"]["input_size"])
    for_infer = infer_metadata(ckpt, checkpoint, hw)  # first: a bad --input fails fast
    data = to_onnx_bytes(model, hw)
    diff = check_onnx(data, model, hw)
    require_close(diff, checkpoint, "nothing written")
    data = _add_metadata(data, {
        "autopose.arch": describe_arch(ckpt["arch"]),
        "autopose.input": f"images (N, 3, {hw[0]}, {hw[1]}) float32 RGB, /255, ImageNet "
                          "mean [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225]",
        "autopose.output": f"heatmaps (N, {ckpt['arch']['num_joints']}, {hw[0] // 4}, "
                           f"{hw[1] // 4})",
        "autopose.keypoints": json.dumps(ckpt["keypoints"]["names"]),
        "autopose.flip_pairs": json.dumps(ckpt["keypoints"]["flip_pairs"]),
        # how the heatmaps decode: standard (HRNet) or dark (autopose.data.codec)
        "autopose.codec": _codec_note(checkpoint_config(ckpt, checkpoint).data),
    } | for_infer)
    atomic_write(out, lambda tmp: tmp.write_bytes(data))
    print(f"autopose export: {out} (opset {OPSET}, input {hw[0]}x{hw[1]}, dynamic batch); "
          f"ONNX Runtime vs PyTorch on a random input: max |diff| = {diff:.2e} "
          f"(<= {TOLERANCE:g})")
    return {"out": str(out), "max_abs_diff": diff, "input": list(hw)}
