"""Atomic file writes, run records and run folders: nothing is ever half-written, and no run
overwrites another run's files."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

import cv2
import numpy
import torch

import autopose
from autopose.errors import UserError


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None],
                 keep_suffix: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    The rename is atomic on POSIX, so a reader sees the old file or the new one, never a part.
    ``keep_suffix``: the temporary ends in ``.tmp`` plus ``path``'s suffix (``.tmp.mp4``),
    for writers that choose the file format by the name's extension (OpenCV's VideoWriter).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".tmp" + (path.suffix if keep_suffix else "")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
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


def clear_stale_temps(folder: Path, name: str = "*") -> None:
    """Remove what a killed :func:`atomic_write` of ``folder/name`` left (``.NAME.*.tmp``,
    or ``.NAME.*.tmp.EXT`` with ``keep_suffix``).

    Called only where this run owns the files: a new run's folder, or the one it resumes.
    """
    if folder.is_dir():
        for pattern in (f".{name}.*.tmp", f".{name}.*.tmp.*"):
            for stale in folder.glob(pattern):
                if stale.is_file():
                    stale.unlink(missing_ok=True)


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


# ---------------------------------------------------------------------------- run folders

# The files that make a folder some run's (most telling first): a new run is never written
# over any of them. Each command's run.json says which command wrote it.
RUN_FILES = ("checkpoint.pt", "last.pt", "best.pt", "metrics.json", "genotype.json",
             "run.json", "config.yaml")
# What --resume continues: each command's own checkpoint.
RESUME_FILES: dict[str | None, str] = {"search": "checkpoint.pt", "train": "last.pt"}
RUNS = {"search": "a search", "train": "a training run", "test": "a test run",
        "infer": "an inference run", None: "another run's files"}


def _recorded_command(folder: Path) -> str | None:
    """The command run.json names (older records: a search's has "strategy", a test's
    "mode"), None when there is no readable one."""
    try:
        record = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("command") in RUNS:
        return record["command"]
    return "search" if "strategy" in record else "test" if "mode" in record else None


def run_in(folder: Path) -> tuple[str | None, str] | None:
    """``(command, file)`` of the run ``folder`` holds (command None when unknown), or None
    when it holds none of :data:`RUN_FILES`."""
    present = [f for f in RUN_FILES if (folder / f).exists()]
    if not present:
        return None
    by_file = {"checkpoint.pt": "search", "last.pt": "train", "best.pt": "train",
               "metrics.json": "test", "genotype.json": "search"}
    command = _recorded_command(folder) or by_file.get(present[0])
    # The checkpoint a command resumes from is the most telling file of its own run.
    shown = RESUME_FILES.get(command)
    return command, shown if shown in present else present[0]


def describe_run(folder: Path) -> str:
    """``"a training run (last.pt)"``, ``"nothing (empty)"``, ... for messages."""
    found = run_in(folder)
    if found is not None:
        return f"{RUNS[found[0]]} ({found[1]})"
    if not folder.exists():
        return "nothing (it does not exist)"
    return "nothing (empty)" if not any(folder.iterdir()) else "no autopose run"


def check_writable(path: Path, flag: str = "--out") -> None:
    """``path`` (a folder, or a file's folder) can be made and written: its nearest existing
    ancestor is a folder where a probe file can be created and removed. UserError if not."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{path}: {flag}: {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".autopose-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise UserError(f"{path}: {flag}: cannot write in {probe} ({e.strerror})") from None


def check_run_folder(out: Path, command: str, resume: bool = False,
                     writes: tuple[str, ...] = ()) -> None:
    """Before ``command`` does any work: ``out`` is a folder it may write its run into.

    A new run needs a folder that does not hold another run (:data:`RUN_FILES`; its own
    earlier output counts too: nothing is ever replaced, only ``--resume`` continues a run)
    nor any of ``writes`` (other files it would write). ``--resume`` needs the command's own
    checkpoint (:data:`RESUME_FILES`). ``out`` must be a folder that can be written. The
    temporary files of a killed run there are removed. All failures are one-line UserErrors.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out: is a file, not a folder")
    check_writable(out)
    own = RESUME_FILES.get(command)
    if resume and own is not None:
        if not (out / own).is_file():
            raise UserError(f"{out}: --resume: holds {describe_run(out)}, not {RUNS[command]} "
                            f"to continue ({own} not found)")
    else:
        found = run_in(out)
        if found is not None:
            hint = ("add --resume to continue it, or give a new --out"
                    if found[0] == command and own else "give a new --out")
            raise UserError(f"{out}: already holds {RUNS[found[0]]} ({found[1]}); {hint}")
        clash = next((f for f in writes if (out / f).exists()), None)
        if clash is not None:
            raise UserError(f"{out / clash}: exists and would be overwritten by autopose "
                            f"{command}; give a new --out")
    clear_stale_temps(out)


# Drivers (the study, the ranking) print from several worker threads at once. print()
# writes the text and its newline apart, so two threads' lines could run together
# ("a: train ...b: train ...").
_SAY = threading.Lock()


def say(line: str, stream: TextIO | None = None) -> None:
    """Print one whole line to ``stream`` (stdout by default), flushed, whichever thread
    calls."""
    stream = sys.stdout if stream is None else stream
    with _SAY:
        stream.write(line + "\n")
        stream.flush()


def restart_unfinished(folder: Path, resumable: str | None, who: str) -> bool:
    """Remove ``folder``, a step's run folder that a driver (the demo, the study, the ranking)
    made itself, when it holds a step that cannot be continued: killed before its first
    ``resumable`` checkpoint, or (``resumable`` None) a step that is only ever run again
    whole, such as a test. The step then starts afresh instead of being refused by
    :func:`check_run_folder`. Returns True when ``folder`` is kept for ``--resume``.

    Only a driver that owns ``folder`` calls this; a user's ``--out`` is never removed.
    """
    if not folder.exists():
        return False
    if resumable is not None and (folder / resumable).is_file():
        return True
    say(f"{who}: {folder} holds a step that was stopped before it could be continued "
        "(no checkpoint); starting it again", sys.stderr)
    shutil.rmtree(folder)
    return False
