"""Atomic file writes and run records: nothing is ever half-written."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy
import torch

import autopose
from autopose.errors import UserError


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    The rename is atomic on POSIX, so a reader sees the old file or the new one, never a part.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    # mkstemp makes the file private (0600); give it the mode an ordinary open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def default_run_dir(kind: str) -> Path:
    """``runs/<kind>/<YYYYmmdd-HHMMSS>``: the run folder of a command given no ``--out``."""
    return Path("runs") / kind / time.strftime("%Y%m%d-%H%M%S")


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file, turning every failure into a one-line UserError naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read {what} ({e.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno})") from None


def git_commit() -> str | None:
    """The commit of the source tree autopose runs from, or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str]:
    """Versions of Python, autopose and the libraries whose behaviour changes results."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "autopose": autopose.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
    }


def run_record(seed: int, argv: list[str] | None = None) -> dict[str, Any]:
    """What a run folder records about how it was made: seed, versions, commit, command."""
    return {
        "seed": seed,
        "argv": list(sys.argv if argv is None else argv),
        "git_commit": git_commit(),
        "versions": versions(),
    }
