"""Run folders a driver owns (the demo's, the study's and the ranking's steps): a step killed
before its first checkpoint starts again; one with a checkpoint is continued."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopose.errors import UserError
from autopose.io import check_run_folder, restart_unfinished


def _killed_before_checkpoint(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("seed: 0\n")
    (folder / "run.json").write_text('{"command": "search"}\n')


def test_a_step_killed_before_its_checkpoint_starts_again(tmp_path: Path, capsys) -> None:
    run = tmp_path / "search"
    _killed_before_checkpoint(run)
    # Without the driver's restart the folder is another run's, and refused either way.
    with pytest.raises(UserError, match="already holds a search"):
        check_run_folder(run, "search")
    with pytest.raises(UserError, match="checkpoint.pt not found"):
        check_run_folder(run, "search", resume=True)
    assert restart_unfinished(run, "checkpoint.pt", "demo") is False
    assert not run.exists()
    assert "starting it again" in capsys.readouterr().err
    check_run_folder(run, "search")  # a new search may now be written there


def test_a_step_with_its_checkpoint_is_kept_for_resume(tmp_path: Path) -> None:
    run = tmp_path / "train"
    _killed_before_checkpoint(run)
    (run / "last.pt").write_bytes(b"PK\x03\x04")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert restart_unfinished(run, "last.pt", "study") is True
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_test_step_is_always_run_again_whole(tmp_path: Path) -> None:
    run = tmp_path / "test"
    run.mkdir()
    (run / "metrics.json").write_text("{}\n")
    assert restart_unfinished(run, None, "study") is False
    assert not run.exists()
    assert restart_unfinished(tmp_path / "absent", "last.pt", "study") is False
