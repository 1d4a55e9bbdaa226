"""Checkpoints: what they hold, how they load, and which files they refuse."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from autopose.cli import main
from autopose.engine.checkpoint import (load_model, load_model_for_test, read_checkpoint,
                                        save_checkpoint)
from autopose.errors import UserError
from engine_fixtures import one_thread, tiny_checkpoint, tiny_genotype, tiny_set  # noqa: F401


class _RunsCode:
    """Unpickling this runs a shell command (it would create ``marker``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_holds_weights_config_genotype_and_metadata(tiny_checkpoint):
    ckpt = read_checkpoint(tiny_checkpoint)
    assert ckpt["arch"]["kind"] == "derived"
    assert ckpt["arch"]["genotype"]["widths"] == [8, 12, 16]
    assert ckpt["config"]["data"]["input_size"] == [64, 48]
    meta = ckpt["meta"]
    assert meta["epoch"] == 1 and "AP" in meta["metrics"]
    assert {"torch", "numpy", "python", "autopose"} <= set(meta["versions"])
    assert "git_commit" in meta and meta["seed"] == 0
    assert ckpt["keypoints"]["names"][0] == "nose" and len(ckpt["keypoints"]["names"]) == 17
    # Loads with weights_only=True by itself too (no allow-listing needed).
    raw = torch.load(tiny_checkpoint, weights_only=True)
    model, _ = load_model(tiny_checkpoint, torch.device("cpu"))
    for k, v in model.state_dict().items():
        assert torch.equal(v, raw["model"][k]), k
    assert not model.training


def test_save_then_load_round_trip(tiny_checkpoint, tmp_path):
    model, ckpt = load_model(tiny_checkpoint, torch.device("cpu"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    from autopose.engine.checkpoint import checkpoint_config, keypoints_from_dict

    cfg = checkpoint_config(ckpt, tiny_checkpoint)
    info = keypoints_from_dict(ckpt["keypoints"], "x")
    out = save_checkpoint(tmp_path / "a.pt", model, cfg, ckpt["arch"], info, 7, {"AP": 0.25})
    again, ck2 = load_model(out, torch.device("cpu"))
    assert ck2["meta"]["epoch"] == 7 and ck2["meta"]["metrics"] == {"AP": 0.25}
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed


def test_checkpoint_with_pickled_code_is_refused(tiny_checkpoint, tmp_path):
    marker = tmp_path / "code_ran"
    evil = torch.load(tiny_checkpoint, weights_only=True)
    evil["meta"]["note"] = _RunsCode(marker)
    path = tmp_path / "evil.pt"
    torch.save(evil, path)
    with pytest.raises(UserError) as e:
        read_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "refused" in msg and "system" in msg
    assert "\n" not in msg
    assert not marker.exists()  # nothing was executed
    # A bare pickle (not a torch archive) that imports code: refused too, still not run.
    bare = tmp_path / "bare.pt"
    bare.write_bytes(pickle.dumps({"model": _RunsCode(marker)}))
    with pytest.raises(UserError, match=r"bare\.pt: refused.*system"):
        read_checkpoint(bare)
    assert not marker.exists()


def test_cli_refuses_code_checkpoint_on_one_line(tiny_checkpoint, tmp_path, capsys):
    marker = tmp_path / "code_ran"
    evil = torch.load(tiny_checkpoint, weights_only=True)
    evil["model"]["extra"] = _RunsCode(marker)
    path = tmp_path / "evil.pt"
    torch.save(evil, path)
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.full((40, 30, 3), 128, np.uint8))
    for argv in (["test", "--checkpoint", str(path)],
                 ["export", "--checkpoint", str(path)],
                 ["infer", "--checkpoint", str(path), "--image", str(image)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(path) in err and "refused" in err, argv
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0.0, 0.02, 0.5, 0.97, "last_byte"])
def test_truncated_checkpoint_is_reported_damaged_by_name(tiny_checkpoint, tmp_path, keep):
    data = tiny_checkpoint.read_bytes()
    n = len(data) - 1 if keep == "last_byte" else int(len(data) * keep)
    path = tmp_path / "cut.pt"
    path.write_bytes(data[:n])
    with pytest.raises(UserError) as e:
        read_checkpoint(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "damaged" in msg, msg
    assert "\n" not in msg


def test_truncated_checkpoint_via_cli(tiny_checkpoint, tmp_path, capsys):
    path = tmp_path / "half.pt"
    path.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    assert main(["test", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == err.splitlines()[0] and f"{path}: checkpoint is damaged" in err


def test_other_files_are_named(tmp_path):
    with pytest.raises(UserError, match="nothere.pt: checkpoint not found"):
        read_checkpoint(tmp_path / "nothere.pt")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(UserError, match="plain.pt: not an autopose checkpoint"):
        read_checkpoint(plain)


def test_model_is_built_from_the_checkpoint_and_checked(tiny_checkpoint, tmp_path):
    from autopose.config import load_config

    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    ckpt["model"].pop(next(iter(ckpt["model"])))
    path = tmp_path / "missing.pt"
    torch.save(ckpt, path)
    with pytest.raises(UserError, match="missing.pt: model: weights do not match"):
        load_model(path)
    mpii = load_config(None, ["data.format=mpii"])
    with pytest.raises(UserError, match="num_joints.*17 joints; MPII has 16"):
        load_model_for_test(tiny_checkpoint, mpii)


# ---------------------------------------------------------------- autopose test --checkpoint


def _test_run(tmp_path: Path, argv: list[str]) -> dict:
    out = tmp_path / "test_run"
    assert main(["test", "--out", str(out)] + argv) == 0
    for name in ("metrics.json", "keypoint_results.json", "config.yaml", "run.json"):
        assert (out / name).is_file(), name
    import json

    return {"metrics": json.loads((out / "metrics.json").read_text()),
            "results": json.loads((out / "keypoint_results.json").read_text()),
            "run": json.loads((out / "run.json").read_text())}


def test_test_command_on_coco_mini_in_the_checkpoints_own_setting(tiny_checkpoint, coco_mini,
                                                                   tmp_path, one_thread):
    # No --config: the checkpoint's config (input 64x48), its val split pointed at coco-mini.
    r = _test_run(tmp_path, ["--checkpoint", str(tiny_checkpoint),
                             f"data.val.images={coco_mini['images']}",
                             f"data.val.ann={coco_mini['ann']}", "data.workers=0"])
    m = r["metrics"]
    assert list(m)[:3] == ["AP", "AP .5", "AP .75"] and len(m) == 10
    assert all(-1 <= v <= 1 for v in m.values())
    import json

    ann = json.loads(Path(coco_mini["ann"]).read_text())
    annotated = {a["image_id"] for a in ann["annotations"] if a.get("num_keypoints", 1) > 0
                 and not a.get("iscrowd", 0)}
    got = {p["image_id"] for p in r["results"]}
    assert got and got <= {im["id"] for im in ann["images"]}
    assert len(got) >= 0.9 * len(annotated)
    assert all(len(p["keypoints"]) == 51 for p in r["results"])
    assert str(tiny_checkpoint) in r["run"]["mode"]
    saved = (tmp_path / "test_run" / "config.yaml").read_text()
    assert "- 64\n  - 48" in saved  # the checkpoint's input size, not the default's


def test_test_command_on_mmpose_coco_with_detections(tiny_checkpoint, mmpose_coco, tmp_path,
                                                     one_thread):
    from conftest import val_overrides

    # The COCO 256x192 setting and the detection file: every detection box is predicted.
    r = _test_run(tmp_path, ["--checkpoint", str(tiny_checkpoint)] + val_overrides(
        mmpose_coco["images"], mmpose_coco["ann"],
        **{"data.val.det_file": mmpose_coco["det"], "test.batch_size": 64}))
    assert set(r["metrics"]) >= {"AP", "AR", "AP .5"}
    assert {p["image_id"] for p in r["results"]} <= {785, 40083, 196141, 197388}
    assert len(r["results"]) >= 4
    assert "256" in (tmp_path / "test_run" / "config.yaml").read_text()
