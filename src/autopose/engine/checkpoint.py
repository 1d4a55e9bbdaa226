"""Checkpoints: weights, resolved config, architecture, keypoint layout and metadata in one file.

A checkpoint is a ``torch.save`` dict of tensors and plain Python data only, so it loads with
``torch.load(weights_only=True)``: a file that carries a pickled object with code (a class, a
function) is refused, never executed. Layout (``version`` 1)::

    {"format": "autopose-checkpoint", "version": 1,
     "model": state_dict,                      # unwrapped (no DDP "module." prefix)
     "arch": {"kind": "derived" | "baseline", ...},  # autopose.models.build.ArchSpec
     "keypoints": {"dataset", "names", "flip_pairs", "sigmas", "skeleton", "upper_body",
                   "lower_body"},
     "config": {...},                          # the resolved Config as a dict
     "meta": {"epoch", "metrics", "seed", "git_commit", "versions", "argv", "saved_at"},
     "train_state": {...} | None,              # last.pt only: what --resume needs
     "tensors_sha256": {"model/NAME": hex, ...}}  # every tensor's, checked on every read

Everything is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autopose.config import Config, config_from_dict, to_dict
from autopose.data.formats import FORMATS
from autopose.data.keypoints import KeypointInfo
from autopose.engine.distributed import default_device
from autopose.errors import UserError
from autopose.engine.resume import read_state_file, save_state_file
from autopose.io import git_commit, versions
from autopose.models.build import build_model, describe_arch

CHECKPOINT_FORMAT = "autopose-checkpoint"
CHECKPOINT_VERSION = 1


# ---------------------------------------------------------------------------- keypoint layout


def keypoints_to_dict(info: KeypointInfo) -> dict[str, Any]:
    """KeypointInfo as plain lists (what ``weights_only`` loading accepts)."""
    return {"dataset": info.dataset, "names": list(info.names),
            "flip_pairs": [list(p) for p in info.flip_pairs], "sigmas": list(info.sigmas),
            "skeleton": [list(e) for e in info.skeleton], "upper_body": list(info.upper_body),
            "lower_body": list(info.lower_body)}


def keypoints_from_dict(d: Any, source: str) -> KeypointInfo:
    """Inverse of :func:`keypoints_to_dict`; UserError naming the file when malformed."""
    try:
        return KeypointInfo(
            dataset=str(d["dataset"]), names=tuple(str(n) for n in d["names"]),
            flip_pairs=tuple((int(a), int(b)) for a, b in d["flip_pairs"]),
            sigmas=tuple(float(s) for s in d["sigmas"]),
            skeleton=tuple((int(a), int(b)) for a, b in d["skeleton"]),
            upper_body=tuple(int(i) for i in d["upper_body"]),
            lower_body=tuple(int(i) for i in d["lower_body"]))
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{source}: keypoints: malformed keypoint layout") from None


# ---------------------------------------------------------------------------- save


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) \
        else model


def save_checkpoint(path: str | Path, model: nn.Module, cfg: Config, arch: dict[str, Any],
                    info: KeypointInfo, epoch: int, metrics: dict[str, float] | None = None,
                    train_state: dict[str, Any] | None = None,
                    argv: list[str] | None = None) -> Path:
    """Write a checkpoint atomically; the weights are copied to the CPU first.

    ``epoch``: epochs completed. ``train_state`` (optimizer, scheduler, RNG states, position in
    the epoch, log) makes the file resumable; it is left out of best-model files.
    """
    state = {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": state,
        "arch": arch,
        "keypoints": keypoints_to_dict(info),
        "config": to_dict(cfg),
        "meta": {"epoch": int(epoch), "metrics": dict(metrics or {}), "seed": cfg.seed,
                 "git_commit": git_commit(),
                 # str(): torch.__version__ is a TorchVersion, which weights_only refuses.
                 "versions": {k: str(v) for k, v in versions().items()},
                 "argv": list(sys.argv if argv is None else argv),
                 "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "train_state": train_state,
    }
    return save_state_file(path, payload)


# ---------------------------------------------------------------------------- load


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint file with ``weights_only=True`` (on the CPU).

    A file that would import code is refused; a truncated or corrupt file is reported as
    damaged (:func:`autopose.engine.resume.read_state_file`); a file of another kind, or
    missing fields, are named. All are UserErrors.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    return _validate(read_state_file(path, "use another copy, or last.pt / best.pt of the run"),
                     path)


def _validate(ckpt: Any, path: Path) -> dict[str, Any]:
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not an autopose checkpoint (no 'format: "
                        f"{CHECKPOINT_FORMAT}' entry)")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise UserError(f"{path}: version: unsupported checkpoint version "
                        f"{ckpt.get('version')!r} (this autopose reads {CHECKPOINT_VERSION})")
    for key, tp in (("model", dict), ("arch", dict), ("keypoints", dict), ("config", dict),
                    ("meta", dict)):
        if not isinstance(ckpt.get(key), tp):
            raise UserError(f"{path}: {key}: missing or not a mapping")
    if not all(isinstance(v, torch.Tensor) for v in ckpt["model"].values()):
        raise UserError(f"{path}: model: expected a state dict of tensors")
    return ckpt


def checkpoint_config(ckpt: dict[str, Any], path: str | Path,
                      overrides: list[str] | None = None) -> Config:
    """The resolved config stored in a checkpoint, with ``key=value`` overrides applied."""
    return config_from_dict(ckpt["config"], f"{path}: config", overrides)


def model_from_checkpoint(ckpt: dict[str, Any], path: str | Path) -> nn.Module:
    """The checkpoint's network with its weights, on the CPU, in eval mode."""
    model = build_model(ckpt["arch"], f"{path}")
    # Before load_state_dict, whose size mismatch is a multi-line RuntimeError: an arch that
    # disagrees with the weights (a joint count edited, say) is named by its first tensor.
    expected = model.state_dict()
    for name, weight in ckpt["model"].items():
        if name in expected and weight.shape != expected[name].shape:
            raise UserError(f"{path}: model.{name}: shape {list(weight.shape)} does not match "
                            f"the architecture in arch ({list(expected[name].shape)}; "
                            f"{describe_arch(ckpt['arch'])})")
    missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[0]})")
        raise UserError(f"{path}: model: weights do not match the architecture in arch "
                        f"({'; '.join(parts)})")
    return model.eval()


def load_model(path: str | Path, device: torch.device | None = None
               ) -> tuple[nn.Module, dict[str, Any]]:
    """``(model in eval mode on device, checkpoint dict)`` for test, infer and export."""
    ckpt = read_checkpoint(path)
    model = model_from_checkpoint(ckpt, path)
    device = device or default_device()
    return model.to(device), ckpt


def load_model_for_test(checkpoint: str | Path | None, cfg: Config,
                        device: torch.device | None = None, quiet: bool = False,
                        data_joints: tuple[int, str | Path] | None = None
                        ) -> tuple[nn.Module, torch.device]:
    """The model for ``autopose test --checkpoint``: built from the checkpoint's own arch.

    The checkpoint's joints must be the test set's: an MPII checkpoint cannot be scored on
    COCO or the other way round. ``data_joints``, ``(K, file)`` of the loaded test set, is
    checked too: a custom layout (flip pairs given) has whatever K its file says.
    """
    if checkpoint is None:
        raise UserError("autopose test: --checkpoint is required")
    device = device or default_device()
    model, ckpt = load_model(checkpoint, device)
    k = ckpt["arch"]["num_joints"]
    fmt = FORMATS.get(cfg.data.format)  # an unknown format was rejected with the val split
    mismatch = fmt.joints_mismatch(k, cfg.data) if fmt is not None else None
    if mismatch is None and data_joints is not None and data_joints[0] != k:
        mismatch = f"{data_joints[1]} has {data_joints[0]}"
    if mismatch is not None:
        raise UserError(f"{checkpoint}: arch.num_joints: the model predicts {k} joints; "
                        f"{mismatch}")
    if not quiet:
        print(f"autopose: {checkpoint}: {describe_arch(ckpt['arch'])}, epoch "
              f"{ckpt['meta'].get('epoch')}")
    return model, device
