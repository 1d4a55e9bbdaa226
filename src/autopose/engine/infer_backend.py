"""The network behind ``autopose infer``: PyTorch on a checkpoint, or ONNX Runtime on an
exported model (or on a checkpoint exported in memory), with the settings it decodes with.

A :class:`Predictor` holds a heatmap function of the evaluation pipeline
(:data:`~autopose.evaluation.pipeline.HeatmapFn`: a batch of uint8 RGB crops ``(N, 3, H, W)``
in, heatmaps ``(N, K, H/4, W/4)`` float32 out), the config the heatmaps decode with (input
size, codec, flip test, batch size, OKS-NMS) and the keypoint layout (flip pairs, skeleton,
OKS sigmas). Both backends feed the same crops, normalised by the same
:func:`~autopose.data.transforms.normalize_batch`, to :func:`~autopose.evaluation.pipeline.predict`:
only the network differs, and export's check bounds that difference (1e-4 on the heatmaps).

* ``torch``: a ``.pt`` checkpoint (its device: the GPU when there is one).
* ``onnxruntime``: an ``.onnx`` file from ``autopose export`` (its settings from the file's
  metadata, :func:`autopose.engine.export.infer_metadata`), or a ``.pt`` checkpoint traced to
  ONNX in memory and checked against PyTorch as export checks it. CPU only. Needs the
  package ``onnxruntime`` (``pip install 'autopose[export]'``).

The model file's suffix picks the default backend (``.onnx``: onnxruntime, else torch).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autopose.config import Config, config_from_dict
from autopose.data.keypoints import KeypointInfo
from autopose.data.transforms import normalize_batch
from autopose.engine.checkpoint import checkpoint_config, keypoints_from_dict, load_model
from autopose.engine.export import (METADATA_KEYS, METADATA_VERSION, require_close,
                                    require_onnx, session_diff, to_onnx_bytes)
from autopose.errors import UserError
from autopose.evaluation.pipeline import HeatmapFn, network_heatmaps


@dataclass
class Predictor:
    """A network ready for :func:`~autopose.evaluation.pipeline.predict`, and what it ran."""

    fn: HeatmapFn
    cfg: Config
    info: KeypointInfo
    backend: str  # a key of BACKENDS
    threads: int  # torch's, and ONNX Runtime's intra-op threads
    model: str  # the file
    # A checkpoint exported in memory for onnxruntime: the export check's max |diff|.
    export_diff: float | None = None
    network_s: float = 0.0  # seconds inside the network (both flips), every call so far

    def heatmaps(self, batch: dict[str, Any], flipped: bool) -> np.ndarray:
        """``fn``, timed: heatmaps ``(N, K, H/4, W/4)`` of the batch's crops (mirrored if
        ``flipped``)."""
        start = time.perf_counter()
        out = self.fn(batch, flipped)
        self.network_s += time.perf_counter() - start
        return out


def is_onnx(model: Path) -> bool:
    return model.suffix.lower() == ".onnx"


def parse_count(text: str | int | None, flag: str) -> int | None:
    """``--threads`` or ``--batch``: a positive integer (None stays None)."""
    if text is None:
        return None
    n = int(text) if isinstance(text, int) or str(text).strip().isdigit() else 0
    if n < 1:
        raise UserError(f"{flag}: expected a positive integer, got {text!r}")
    return n


def choose_backend(backend: str | None, model: Path) -> str:
    """``--backend`` checked (one line naming the choices), or the default for ``model``."""
    name = backend if backend is not None else ("onnxruntime" if is_onnx(model) else "torch")
    if name not in BACKENDS:
        raise UserError(f"--backend: expected {' or '.join(BACKENDS)}, got {name!r}")
    if name == "torch" and is_onnx(model):
        raise UserError(f"{model}: --backend torch runs a .pt checkpoint; an exported .onnx "
                        "model runs on --backend onnxruntime")
    return name


def require_onnxruntime(export: bool) -> Any:
    """The ``onnxruntime`` module (and with ``export``, to trace a checkpoint to ONNX in
    memory, ``onnx``: torch's exporter writes through it), or one line saying what to
    install."""
    return require_onnx("--backend onnxruntime", with_onnx=export,
                        otherwise=", or use --backend torch with the .pt checkpoint")


@dataclass(frozen=True)
class NetworkOptions:
    """``--backend``, ``--threads`` and ``--batch``, checked before any work."""

    backend: str  # a key of BACKENDS
    threads: int  # CPU threads of torch and of ONNX Runtime
    batch: int | None  # person crops a network call; None: the config's test.batch_size

    @classmethod
    def parse(cls, model: Path, backend: str | None = None, threads: int | str | None = None,
              batch: int | str | None = None) -> NetworkOptions:
        """None: the default (the backend by ``model``'s suffix; torch's current thread
        count, one per core unless set; the model config's batch size)."""
        name = choose_backend(backend, Path(model))
        if name == "onnxruntime":
            require_onnxruntime(export=not is_onnx(Path(model)))
        return cls(name, parse_count(threads, "--threads") or torch.get_num_threads(),
                   parse_count(batch, "--batch"))


def load_predictor(model: Path, options: NetworkOptions,
                   overrides: list[str] | None = None) -> Predictor:
    """The network of ``model`` (a checkpoint or an exported ``.onnx``) as ``options`` say.

    torch's thread count is set for the whole process (the crops are normalised with torch
    on either backend); ONNX Runtime gets the same count.
    """
    batch = [f"test.batch_size={options.batch}"] if options.batch else []
    torch.set_num_threads(options.threads)
    return BACKENDS[options.backend](Path(model), options.threads,
                                     list(overrides or []) + batch)


# ---------------------------------------------------------------------------- torch


def checkpoint_model(model: Path, overrides: list[str] | None,
                     device: torch.device | None = None) -> tuple[nn.Module, Config,
                                                                   KeypointInfo]:
    """A checkpoint's network (on ``device``, default the best one), its config with
    ``overrides``, and its keypoint layout: what both backends read from a ``.pt``."""
    net, ckpt = load_model(model, device)
    return (net, checkpoint_config(ckpt, model, overrides),
            keypoints_from_dict(ckpt["keypoints"], str(model)))


def torch_predictor(model: Path, threads: int, overrides: list[str] | None) -> Predictor:
    """A checkpoint's network in PyTorch, with the checkpoint's config and keypoint layout."""
    net, cfg, info = checkpoint_model(model, overrides)
    device = next(net.parameters()).device
    return Predictor(network_heatmaps(net, device), cfg, info, "torch", threads, str(model))


# ---------------------------------------------------------------------------- onnxruntime


def onnx_heatmaps(session: Any) -> HeatmapFn:
    """Heatmaps from an ONNX Runtime session of an exported pose network (input ``images``
    ``(N, 3, H, W)`` normalised float32, output ``heatmaps``), as ``network_heatmaps``
    computes them in PyTorch."""

    def fn(batch: dict[str, Any], flipped: bool) -> np.ndarray:
        images = normalize_batch(batch["image"])
        if flipped:
            images = images.flip(3)
        return session.run(["heatmaps"], {"images": images.contiguous().numpy()})[0]

    return fn


def ort_session(ort: Any, model: Path | bytes, threads: int, source: Path) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads and every graph
    optimisation (constant folding, Conv+Add+ReLU fusion, memory layout)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # One operator at a time: these networks are a chain, so inter-op threads would only
    # compete with the intra-op ones for the cores.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no warnings about unused initialisers
    try:
        return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # ONNX Runtime's error classes derive from Exception directly
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from PATH failed:WHY"
        why = first.rsplit("failed:", 1)[-1].strip()
        raise UserError(f"{source}: ONNX Runtime cannot load it ({why})") from None


def settings_from_metadata(meta: dict[str, str], model: Path, overrides: list[str] | None
                           ) -> tuple[Config, KeypointInfo]:
    """The config and keypoint layout ``autopose export`` stored in an ONNX file."""
    if METADATA_KEYS["config"] not in meta or METADATA_KEYS["keypoints"] not in meta:
        if any(k.startswith("autopose.") for k in meta):
            raise UserError(f"{model}: exported by an older autopose, without the settings "
                            f"infer needs ({METADATA_KEYS['config']}); export it again: "
                            "autopose export --checkpoint CKPT")
        raise UserError(f"{model}: not an autopose model (no autopose metadata); export one "
                        "with autopose export --checkpoint CKPT")
    version = meta.get(METADATA_KEYS["version"], "")
    if not version.isdigit() or int(version) > METADATA_VERSION:
        raise UserError(f"{model}: metadata {METADATA_KEYS['version']} {version!r}: this "
                        f"autopose reads {METADATA_VERSION} (exported by a newer autopose?)")
    trees = {}
    for key in ("config", "keypoints"):
        try:
            trees[key] = json.loads(meta[METADATA_KEYS[key]])
        except json.JSONDecodeError:
            raise UserError(f"{model}: metadata {METADATA_KEYS[key]}: not valid JSON") from None
        if not isinstance(trees[key], dict):
            raise UserError(f"{model}: metadata {METADATA_KEYS[key]}: expected a JSON object")
    cfg = config_from_dict(trees["config"], f"{model}: metadata {METADATA_KEYS['config']}",
                           overrides)
    info = keypoints_from_dict(trees["keypoints"],
                               f"{model}: metadata {METADATA_KEYS['keypoints']}")
    return cfg, info


def _fits(shape: list[Any], want: list[int]) -> bool:
    """An ONNX shape (past the batch axis) against ``want``: named (symbolic) dimensions,
    which the exporter leaves where it cannot infer a size, fit any size."""
    return len(shape) == len(want) and all(not isinstance(d, int) or d == w
                                           for d, w in zip(shape, want))


def _check_signature(session: Any, cfg: Config, info: KeypointInfo, model: Path) -> None:
    """The session takes ``images (N, 3, H, W)`` at the config's input size and gives
    ``heatmaps (N, K, H/s, W/s)`` of the layout's joint count (where the file fixes them)."""
    inputs = {i.name: list(i.shape) for i in session.get_inputs()}
    outputs = {o.name: list(o.shape) for o in session.get_outputs()}
    h, w = cfg.data.input_size
    hh, hw = cfg.data.heatmap_size
    if list(inputs) != ["images"] or not _fits(inputs["images"][1:], [3, h, w]):
        raise UserError(f"{model}: takes {inputs}, not images (N, 3, {h}, {w}) of its "
                        "data.input_size")
    if "heatmaps" not in outputs or not _fits(outputs["heatmaps"][1:],
                                              [info.num_joints, hh, hw]):
        raise UserError(f"{model}: gives {outputs}, not heatmaps (N, {info.num_joints}, "
                        f"{hh}, {hw}) of its {info.num_joints} joints")


def onnxruntime_predictor(model: Path, threads: int, overrides: list[str] | None
                          ) -> Predictor:
    """An exported ``.onnx`` in ONNX Runtime, or a checkpoint traced to ONNX in memory (and
    checked against PyTorch on a random input within export's tolerance)."""
    ort = require_onnxruntime(export=not is_onnx(model))
    if is_onnx(model):
        if not model.is_file():
            raise UserError(f"{model}: --checkpoint: no such file")
        session = ort_session(ort, model, threads, model)
        cfg, info = settings_from_metadata(session.get_modelmeta().custom_metadata_map, model,
                                           overrides)
        diff = None
    else:
        net, cfg, info = checkpoint_model(model, overrides, torch.device("cpu"))
        hw = (int(cfg.data.input_size[0]), int(cfg.data.input_size[1]))
        session = ort_session(ort, to_onnx_bytes(net, hw), threads, model)
        diff = session_diff(session, net, hw)
        require_close(diff, model, "exported in memory for --backend onnxruntime; use "
                                   "--backend torch")
    _check_signature(session, cfg, info, model)
    return Predictor(onnx_heatmaps(session), cfg, info, "onnxruntime", threads, str(model),
                     diff)


# --backend NAME: the function that loads a model file for it.
BACKENDS: dict[str, Callable[[Path, int, list[str] | None], Predictor]] = {
    "torch": torch_predictor, "onnxruntime": onnxruntime_predictor}
