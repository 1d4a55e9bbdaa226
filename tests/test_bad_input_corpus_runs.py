"""A corpus of bad input to train, search, test, infer, export and data synth: config values,
run folders, output paths and checkpoints.

Every case runs the command line in process and checks what issue 14 asks of bad input:
exit code 2, exactly one ``autopose: error:`` line (naming the file or folder and what is
wrong), no traceback, and nothing written: the case's folder holds the same files, with the
same bytes, before and after. Each case fails before any training, search or scoring, so the
corpus runs in seconds (the one trained checkpoint is the session's ``tiny_checkpoint``).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch

from autopose.cli import main
from autopose.config import dump_config, load_config

sys.path.insert(0, str(Path(__file__).resolve().parent / "engine"))
# The fixtures tiny_checkpoint needs are imported by name (engine_fixtures says why).
from engine_fixtures import (  # noqa: E402,F401
    TINY_GENOTYPE, tiny_checkpoint, tiny_genotype, tiny_set)


@dataclass
class Scene:
    """The folders and files one case starts from, all under ``root`` (the case's tmp_path)."""

    root: Path
    checkpoint: Path  # a copy of a one-epoch best.pt
    train_run: Path  # a copy of a finished training run folder (last.pt, best.pt, ...)
    search_run: Path  # a search's folder after its 380 MB checkpoint.pt was deleted
    images: Path  # a folder with one PNG
    genotype: Path
    a_file: Path  # a plain file where a folder is expected

    @property
    def new(self) -> Path:
        return self.root / "new"


def _scene(root: Path, checkpoint: Path) -> Scene:
    train_run = root / "train_run"
    shutil.copytree(checkpoint.parent, train_run)
    search_run = root / "search_run"
    search_run.mkdir()
    (search_run / "genotype.json").write_text(json.dumps(TINY_GENOTYPE))
    (search_run / "config.yaml").write_text(dump_config(load_config(None)))
    (search_run / "run.json").write_text(json.dumps({"command": "search",
                                                     "strategy": "autopose"}))
    images = root / "images"
    images.mkdir()
    cv2.imwrite(str(images / "img.png"), np.full((40, 30, 3), 128, np.uint8))
    a_file = root / "notes.txt"
    a_file.write_text("not a folder\n")
    ckpt = root / "best.pt"
    shutil.copyfile(checkpoint, ckpt)
    return Scene(root, ckpt, train_run, search_run, images, search_run / "genotype.json",
                 a_file)


def _flip_a_weight_byte(path: Path) -> None:
    """Flip one byte in the middle of the largest tensor's data inside the checkpoint's zip
    (torch stores tensors uncompressed and does not check the zip's CRCs on loading)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    assert info.compress_type == zipfile.ZIP_STORED
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:
                                                   info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _damaged(s: Scene) -> Path:
    _flip_a_weight_byte(s.checkpoint)
    return s.checkpoint


def _arch_disagrees(s: Scene) -> Path:
    ckpt = torch.load(s.checkpoint, weights_only=True)
    ckpt["arch"]["num_joints"] = 16  # the weights' head predicts 17
    torch.save(ckpt, s.checkpoint)
    return s.checkpoint


def _bad_config_file(s: Scene) -> Path:
    path = s.root / "bad.yaml"
    path.write_text("train:\n  lr: .nan\n")
    return path


def _unwritable(s: Scene) -> Path:
    """A folder this process cannot write in: read-only by mode, or (as root, whom modes do
    not stop) sysfs, where nobody can create a file."""
    if os.geteuid() == 0:
        if not Path("/sys/kernel").is_dir():
            pytest.skip("running as root (chmod does not stop root) and no /sys to use instead")
        return Path("/sys/kernel/autopose-run")
    ro = s.root / "read_only"
    ro.mkdir()
    ro.chmod(0o555)
    return ro / "run"


def _empty(s: Scene) -> Path:
    (s.root / "empty").mkdir()
    return s.root / "empty"


def _training_checkpoint_as_search(s: Scene) -> Path:
    """A folder whose checkpoint.pt is a training checkpoint under the search's name."""
    fake = s.root / "fake"
    fake.mkdir()
    shutil.copyfile(s.checkpoint, fake / "checkpoint.pt")
    return fake


def _with_file(s: Scene, name: str) -> Path:
    """A folder of no run that holds a file the command would write."""
    (s.root / "out").mkdir()
    (s.root / "out" / name).write_text("[]")
    return s.root / "out"


Case = Callable[[Scene], tuple[list[str], str]]
TRAIN = ["train", "--genotype"]

CASES: dict[str, Case] = {
    # ------------------------------------------------------------ config values
    "train_input_size_zero": lambda s: (
        TRAIN + [str(s.genotype), "--out", str(s.new), "data.input_size=[0,0]"],
        "config: data.input_size: expected [height, width] of positive integers"),
    "train_input_size_one_value": lambda s: (
        TRAIN + [str(s.genotype), "--out", str(s.new), "data.input_size=[64]"],
        "config: data.input_size: expected [height, width]"),
    "test_input_size_negative": lambda s: (
        ["test", "--oracle", "--out", str(s.new), "data.input_size=[-64,48]"],
        "config: data.input_size: expected [height, width]"),
    "search_heatmap_stride_zero": lambda s: (
        ["search", "--out", str(s.new), "data.heatmap_stride=0"],
        "config: data.heatmap_stride: must be at least 1, got 0"),
    "test_sigma_negative": lambda s: (
        ["test", "--oracle", "--out", str(s.new), "data.sigma=-2"],
        "config: data.sigma: must be a positive number, got -2.0"),
    "search_input_not_divisible_by_stride": lambda s: (
        ["search", "--out", str(s.new), "search.input_size=[130,96]"],
        "config: search.input_size: [130, 96]: each side must be divisible"),
    "train_nan_lr_in_a_config_file": lambda s: (
        TRAIN + [str(s.genotype), "--out", str(s.new), "--config", str(_bad_config_file(s))],
        "bad.yaml: train.lr: must be a positive number, got nan"),
    # ------------------------------------------------------------ run folders
    "search_new_in_a_training_run": lambda s: (
        ["search", "--out", str(s.train_run)],
        "already holds a training run (last.pt); give a new --out"),
    "train_new_in_a_search_run": lambda s: (
        TRAIN + [str(s.genotype), "--out", str(s.search_run)],
        "search_run: already holds a search (genotype.json); give a new --out"),
    "train_resume_in_a_search_run": lambda s: (
        TRAIN + [str(s.genotype), "--resume", "--out", str(s.search_run)],
        "--resume: holds a search (genotype.json), not a training run"),
    "train_new_in_its_own_run": lambda s: (
        TRAIN + [str(s.genotype), "--out", str(s.train_run)],
        "already holds a training run (last.pt); add --resume to continue it"),
    "test_into_a_training_run": lambda s: (
        ["test", "--oracle", "--out", str(s.train_run)],
        "train_run: already holds a training run (last.pt); give a new --out"),
    "infer_into_its_image_folder": lambda s: (
        ["infer", "--checkpoint", str(s.checkpoint), "--image", str(s.images), "--out",
         str(s.images)],
        "img.png: exists and would be overwritten by autopose infer"),
    "infer_over_results_json": lambda s: (
        ["infer", "--checkpoint", str(s.checkpoint), "--image", str(s.images / "img.png"),
         "--out", str(_with_file(s, "results.json"))],
        "results.json: exists and would be overwritten by autopose infer"),
    "infer_video_into_its_folder": lambda s: (
        ["infer", "--checkpoint", str(s.checkpoint),
         "--video", str(_with_file(s, "clip.mp4") / "clip.mp4"), "--out", str(s.root / "out")],
        "clip.mp4: exists and would be overwritten by autopose infer"),
    "export_over_a_runs_checkpoint": lambda s: (
        ["export", "--checkpoint", str(s.checkpoint), "--out", str(s.train_run / "last.pt")],
        "last.pt: --out: exists; autopose export never replaces a file"),
    # ------------------------------------------------------------ output paths
    "train_out_is_a_file": lambda s: (
        TRAIN + [str(s.genotype), "--out", str(s.a_file)], "notes.txt: --out: is a file"),
    "search_out_is_a_file": lambda s: (
        ["search", "--out", str(s.a_file)], "notes.txt: --out: is a file"),
    "test_out_is_a_file": lambda s: (
        ["test", "--oracle", "--out", str(s.a_file)], "notes.txt: --out: is a file"),
    "infer_out_is_a_file": lambda s: (
        ["infer", "--checkpoint", str(s.checkpoint), "--image", str(s.images), "--out",
         str(s.a_file)], "notes.txt: --out: is a file"),
    "export_out_under_a_file": lambda s: (
        ["export", "--checkpoint", str(s.checkpoint), "--out", str(s.a_file / "m.onnx")],
        "is a file, not a folder"),
    "data_synth_out_is_a_file": lambda s: (
        ["data", "synth", "--out", str(s.a_file), "--num-train", "1", "--num-val", "1"],
        "notes.txt: --out"),
    "train_out_cannot_be_written": lambda s: (
        TRAIN + [str(s.genotype), "--out", str(_unwritable(s))], "--out: cannot write in"),
    "data_synth_out_cannot_be_written": lambda s: (
        ["data", "synth", "--out", str(_unwritable(s)), "--num-train", "1", "--num-val", "1"],
        "--out: cannot write in"),
}


def _reading(command: str, s: Scene, checkpoint: Path) -> list[str]:
    """``command`` (test, infer or export) reading ``checkpoint`` into a new output."""
    out = s.root / "m.onnx" if command == "export" else s.new
    extra = ["--image", str(s.images)] if command == "infer" else []
    return [command, "--checkpoint", str(checkpoint), "--out", str(out)] + extra


# search --resume on folders that hold no search: (the folder, what the error says).
for _name, _folder, _needle in (
        ("a_training_run", lambda s: s.train_run,
         "--resume: holds a training run (last.pt), not a search to continue"),
        ("an_empty_folder", _empty, "empty: --resume: holds nothing (empty), not a search"),
        ("a_missing_folder", lambda s: s.new,
         "--resume: holds nothing (it does not exist), not a search"),
        ("a_foreign_folder", lambda s: s.images, "--resume: holds no autopose run, not a search"),
        ("a_training_checkpoint", _training_checkpoint_as_search,
         "checkpoint.pt: --resume: a training checkpoint, not a search's")):
    CASES[f"search_resume_on_{_name}"] = lambda s, f=_folder, n=_needle: (
        ["search", "--resume", "--out", str(f(s))], n)

# ---------------------------------------------------------------- checkpoints
for _command in ("test", "infer", "export"):
    CASES[f"{_command}_damaged_weights"] = lambda s, c=_command: (
        _reading(c, s, _damaged(s)), "best.pt: damaged: the weights' sha256 does not match "
                                     "(model/")
    CASES[f"{_command}_arch_disagrees_with_weights"] = lambda s, c=_command: (
        _reading(c, s, _arch_disagrees(s)), "best.pt: model.head.final.weight: shape "
                                            "[17, 36, 1, 1] does not match the architecture")


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes (folders: None) under ``root``."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, tiny_checkpoint, capsys,
                                                  monkeypatch):
    # A command that got past its checks would generate the built-in set here, which the
    # snapshot would show (and the case's time).
    monkeypatch.setenv("AUTOPOSE_CACHE", str(tmp_path / "cache"))
    scene = _scene(tmp_path, tiny_checkpoint)
    argv, needle = CASES[case](scene)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("autopose: error:")]
    assert code == 2, (argv, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]
    after = _snapshot(tmp_path)
    assert after == before, sorted(set(after) ^ set(before)) or "a file's bytes changed"


# ---------------------------------------------------------------- stale temporary files


def test_data_synth_removes_what_a_killed_generation_left(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    out = tmp_path / "syn"
    killed = tmp_path / f".syn.tmp-{pid}-abcd1234"  # a process that no longer runs
    old_style = tmp_path / ".syn.tmp-k1ll3d"  # from before process ids were in the names
    swapped = tmp_path / f".syn.old-{pid}-efgh5678"  # killed while replacing an older set
    live = tmp_path / f".syn.tmp-{os.getpid()}-live0000"  # a generation under way
    for d in (killed, old_style, swapped, live):
        (d / "images" / "train").mkdir(parents=True)
        (d / "images" / "train" / "000001.jpg").write_bytes(b"\xff" * 1000)
    assert main(["data", "synth", "--out", str(out), "--num-train", "1", "--num-val", "1",
                 "--image-size", "96x64"]) == 0
    assert not killed.exists() and not old_style.exists() and not swapped.exists()
    assert live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live.name])


def test_a_run_removes_a_killed_runs_atomic_write_temporaries(tmp_path, tiny_checkpoint):
    out = tmp_path / "infer"
    out.mkdir()
    stale = out / ".results.json.x8k2p1.tmp"  # atomic_write's name, left by a SIGKILL
    stale.write_text("[{")
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.full((40, 30, 3), 128, np.uint8))
    assert main(["infer", "--checkpoint", str(tiny_checkpoint), "--image", str(image),
                 "--out", str(out)]) == 0
    assert not stale.exists() and (out / "results.json").is_file()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
