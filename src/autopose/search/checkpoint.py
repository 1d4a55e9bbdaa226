"""The search's checkpoint: written atomically, read without running any code."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from autopose.errors import UserError
from autopose.io import atomic_write, write_json

CHECKPOINT = "checkpoint.pt"
PROGRESS = "search_state.json"


def save_search_checkpoint(out: Path, state: dict[str, Any], progress: dict[str, int]) -> None:
    """``out/checkpoint.pt`` (then a small ``search_state.json`` saying where it stands)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(out / CHECKPOINT, lambda p: p.write_bytes(buf.getvalue()))
    write_json(out / PROGRESS, progress)


def load_search_checkpoint(out: Path) -> dict[str, Any] | None:
    """The run folder's checkpoint, None when there is none; UserError when damaged."""
    path = out / CHECKPOINT
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"{path}: refused: the checkpoint holds objects other than tensors and "
                        f"plain data ({str(e).splitlines()[0][:120]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise UserError(f"{path}: damaged checkpoint, cannot be read "
                        f"({e.__class__.__name__}); delete it to start over") from None
