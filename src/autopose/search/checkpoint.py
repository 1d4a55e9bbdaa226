"""The search's checkpoint: written atomically, read without running any code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autopose.engine.resume import load_state_file, save_state_file
from autopose.errors import UserError
from autopose.io import write_json

CHECKPOINT = "checkpoint.pt"
PROGRESS = "search_state.json"


def save_search_checkpoint(out: Path, state: dict[str, Any], progress: dict[str, int]) -> None:
    """``out/checkpoint.pt`` (then a small ``search_state.json`` saying where it stands)."""
    save_state_file(out / CHECKPOINT, state)
    write_json(out / PROGRESS, progress)


def load_search_checkpoint(out: Path) -> dict[str, Any] | None:
    """The run folder's checkpoint, None when there is none; UserError when damaged, or
    when it is not a search's (a training checkpoint renamed, say)."""
    state = load_state_file(out / CHECKPOINT)
    if state is not None and not (isinstance(state, dict) and "supernet" in state):
        what = ("a training checkpoint" if isinstance(state, dict)
                and state.get("format") == "autopose-checkpoint" else "another kind of file")
        raise UserError(f"{out / CHECKPOINT}: --resume: {what}, not a search's (no supernet)")
    return state
