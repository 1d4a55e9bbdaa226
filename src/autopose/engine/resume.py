"""What a resumed run restores, for training and the search alike.

* RNG capture: :func:`seed_everything`, and :func:`rng_state` / :func:`set_rng_state` for the
  Python, NumPy, torch and CUDA generators (training's ``last.pt`` stores all of them).
* Training's ``train_state`` (in ``last.pt``): :class:`TrainProgress`, the optimizer,
  scheduler, loss scaler and RNG states, written by :func:`train_state` and put back by
  :func:`restore_train_state`.
* The state file: :func:`save_state_file` writes a dict of tensors and plain data
  atomically; :func:`read_state_file` reads it back with ``torch.load(weights_only=True)``,
  refusing a file that would import code and naming a damaged one. Each tensor's sha256 is
  stored in the file (:data:`HASH_KEY`) and checked on every read: torch does not check the
  zip's CRCs, so a flipped byte inside a weight would otherwise load silently. The search's
  ``checkpoint.pt`` (:func:`load_state_file`) and training's ``last.pt`` / ``best.pt``
  (:mod:`autopose.engine.checkpoint`, which adds its layout and checks) both go through them.
* :func:`first_difference`: which setting a resumed run's stored config differs in.

The search's checkpoint keeps its own keys (``torch_rng`` and its generator's state, see
:mod:`autopose.search.bilevel`): restoring more generators there would change the numbers of
a resumed search.
"""

from __future__ import annotations

import hashlib
import pickletools
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from autopose.errors import UserError
from autopose.io import atomic_write

# ---------------------------------------------------------------------------- RNG states


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every device) from one number."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global RNG states as tensors and plain data (loadable with weights_only=True)."""
    np_state = np.random.get_state(legacy=False)
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np.asarray(np_state["state"]["key"], np.int64)),
                  "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]), "gauss": float(np_state["gauss"])},
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------- training


@dataclass
class TrainProgress:
    """Position and bookkeeping of a training run, saved in last.pt."""

    epoch: int = 0  # epochs completed
    iteration: int = 0  # batches completed within ``epoch``
    global_step: int = 0
    loss_sum: float = 0.0  # over the batches of the current epoch so far
    loss_count: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)


def train_state(s: TrainProgress, optimizer: torch.optim.Optimizer, scheduler: Any,
                scaler: torch.amp.GradScaler | None, world_size: int,
                iters_per_epoch: int) -> dict[str, Any]:
    """The ``train_state`` entry of last.pt: everything ``--resume`` puts back."""
    return {"optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "epoch": s.epoch, "iteration": s.iteration, "global_step": s.global_step,
            "loss_sum": s.loss_sum, "loss_count": s.loss_count, "best": dict(s.best),
            "log": list(s.log), "rng": rng_state(), "world_size": world_size,
            "iters_per_epoch": iters_per_epoch}


def restore_train_state(ts: dict[str, Any], optimizer: torch.optim.Optimizer, scheduler: Any,
                        scaler: torch.amp.GradScaler | None, world_size: int,
                        source: Path) -> TrainProgress:
    """Load what :func:`train_state` saved (and the global RNG states); the progress.

    A checkpoint written mid-epoch resumes only with as many processes as wrote it: the
    sampler's position is per process.
    """
    if ts["iteration"] and ts["world_size"] != world_size:
        raise UserError(f"{source}: train_state.world_size: saved mid-epoch by "
                        f"{ts['world_size']} processes; resume it with as many (now "
                        f"{world_size})")
    optimizer.load_state_dict(ts["optimizer"])
    scheduler.load_state_dict(ts["scheduler"])
    if scaler is not None and ts.get("scaler"):
        scaler.load_state_dict(ts["scaler"])
    progress = TrainProgress(epoch=ts["epoch"], iteration=ts["iteration"],
                             global_step=ts["global_step"], loss_sum=ts["loss_sum"],
                             loss_count=ts["loss_count"], best=dict(ts["best"]),
                             log=list(ts["log"]))
    set_rng_state(ts["rng"])
    return progress


# ---------------------------------------------------------------------------- the state file


# The entry of a state file that maps each tensor's key path to the sha256 of its bytes.
HASH_KEY = "tensors_sha256"


def _tensors(obj: Any, at: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """``(key path, tensor)`` of every tensor in nested dicts and lists, in their order
    (pickling keeps a dict's order, so a file read back walks the same way)."""
    if isinstance(obj, torch.Tensor):
        yield at, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if not (at == "" and k == HASH_KEY):
                yield from _tensors(v, f"{at}/{k}" if at else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{at}/{i}")


def tensor_sha256(t: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (in logical order, whatever its strides)."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def tensor_hashes(state: dict[str, Any]) -> dict[str, str]:
    """Key path -> :func:`tensor_sha256` of every tensor in ``state``."""
    return {at: tensor_sha256(t) for at, t in _tensors(state)}


def save_state_file(path: Path, state: dict[str, Any]) -> Path:
    """``torch.save(state)`` to ``path`` atomically (a temporary file beside it, renamed),
    with each tensor's sha256 under :data:`HASH_KEY`."""
    state = {**state, HASH_KEY: tensor_hashes(state)}
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def verify_tensors(state: Any, path: Path, hint: str) -> None:
    """UserError naming ``path`` when a tensor's bytes differ from their stored sha256.

    One hash per tensor, not one over all: a tensor added or taken out is a mismatch of the
    architecture, which the reader of the layout names (``model: weights do not match``); a
    changed byte is damage, named here with the first tensor it is in.
    """
    if not isinstance(state, dict) or HASH_KEY not in state:
        # Files written before the hashes were recorded: loaded without verification.
        return
    stored = state[HASH_KEY]
    if not isinstance(stored, dict):
        raise UserError(f"{path}: damaged: {HASH_KEY} is not a mapping of tensor hashes")
    for at, t in _tensors(state):
        want = stored.get(at)
        if want is not None and tensor_sha256(t) != want:
            raise UserError(f"{path}: damaged: the weights' sha256 does not match ({at}); "
                            f"{hint}")


def _pickle_globals(data: bytes, limit: int = 5) -> list[str]:
    """``module.name`` of the first globals a raw pickle would import (empty if none)."""
    found: list[str] = []
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(str(arg))
        elif op.name in ("GLOBAL", "INST"):
            found.append(str(arg).replace(" ", "."))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append(f"{strings[-2]}.{strings[-1]}")
        if len(found) >= limit:
            break
    return found


def _refuse(path: Path, what: str) -> UserError:
    return UserError(f"{path}: refused: the file carries a pickled object with code ({what}); "
                     "autopose loads checkpoints with torch.load(weights_only=True) and never "
                     "runs code from one")


def read_state_file(path: Path, hint: str) -> Any:
    """What ``path`` (an existing file) holds, loaded with ``weights_only=True`` on the CPU.

    A file that would import code is refused, naming what it imports; a truncated or corrupt
    one is reported as damaged, followed by ``hint`` (what the user can do). UserErrors both.
    """
    def damaged(why: str) -> UserError:
        return UserError(f"{path}: checkpoint is damaged or truncated ({why}); {hint}")

    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":
        # torch.save writes a zip archive; anything else is a bare pickle, an old torch
        # format, or garbage. Look at the pickle's opcodes (without running them) to say which.
        data = path.read_bytes()
        if not data:
            raise damaged("empty file")
        try:
            globs = _pickle_globals(data)
        except Exception:  # noqa: BLE001 - any parse failure means "not a pickle"
            raise damaged("not a torch checkpoint archive") from None
        if globs:
            raise _refuse(path, "imports " + ", ".join(globs))
        raise UserError(f"{path}: not an autopose checkpoint (a bare pickle, not a torch "
                        "checkpoint archive)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - classified below, never re-raised as is
        msg = str(e)
        if "GLOBAL" in msg or "Unsupported global" in msg:
            # "Trying to load unsupported GLOBAL posix.system ..." -> name what it imports.
            detail = next((ln.strip() for ln in msg.splitlines() if "GLOBAL" in ln), "")
            raise _refuse(path, detail or "a global the weights-only loader blocks") from None
        if isinstance(e, (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError)) \
                or "Weights only load failed" in msg:
            first = msg.splitlines()[0] if msg else type(e).__name__
            raise damaged(first[:120]) from None
        raise damaged(type(e).__name__) from None
    verify_tensors(state, path, hint)
    return state


def load_state_file(path: Path) -> dict[str, Any] | None:
    """The search's state in ``path``, None when there is no such file (see
    :func:`read_state_file`; a damaged one is best deleted: the search starts over)."""
    if not path.exists():
        return None
    return read_state_file(path, "delete it to start over")


# ---------------------------------------------------------------------------- config check


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The dotted key where two nested dicts first differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            d = first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if d is not None:
                return d
        return None
    return None if a == b else prefix.rstrip(".")
