"""``autopose infer --backend torch|onnxruntime``: the same poses from PyTorch and from ONNX
Runtime (an exported .onnx, or the checkpoint exported in memory) on real COCO images with
their detection file; threads and batches; onnxruntime missing."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from autopose.cli import main
from autopose.data.records import SkipCounter
from autopose.data.topdown import TopDownDataset
from autopose.engine.export import TOLERANCE, run_export_command
from autopose.engine.infer import run_infer_command
from autopose.engine.infer_backend import NetworkOptions, load_predictor, ort_session
from autopose.engine.infer_boxes import person_records
from engine_fixtures import (tiny_checkpoint, tiny_genotype, tiny_set,  # noqa: F401
                             trained_checkpoint)


@pytest.fixture(scope="module")
def exported(trained_checkpoint, tmp_path_factory) -> Path:
    """The five-epoch checkpoint exported to ONNX (its metadata: the checkpoint's settings)."""
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_export_command(trained_checkpoint, "onnx", out)
    finally:
        torch.set_num_threads(before)
    return out


def _crops(predictor, images: Path, det: Path) -> dict:
    """One batch of real person crops (the first detections of the sample images)."""
    dets = json.loads(det.read_text())[:6]
    skips = SkipCounter("det")
    records = []
    for d in dets:
        path = images / f"{d['image_id']:012d}.jpg"
        h, w = cv2.imread(str(path)).shape[:2]
        records += person_records(str(path), d["image_id"], w, h, [(d["bbox"], d["score"])],
                                  predictor.cfg, predictor.info.num_joints, skips)
    ds = TopDownDataset(records, predictor.info, predictor.cfg.data, train=False)
    return {"image": torch.stack([ds[i]["image"] for i in range(len(ds))])}


def test_both_backends_give_the_same_poses_on_real_images(trained_checkpoint, exported,
                                                          mmpose_coco, tmp_path):
    images, det = Path(mmpose_coco["images"]), Path(mmpose_coco["det"])
    # The heatmaps of real crops, plain and mirrored: within export's tolerance.
    nets = {b: load_predictor(m, NetworkOptions.parse(m, b, 1, None))
            for b, m in (("torch", trained_checkpoint), ("onnxruntime", exported))}
    batch = _crops(nets["torch"], images, det)
    for flipped in (False, True):
        want = nets["torch"].fn(batch, flipped)
        got = nets["onnxruntime"].fn(batch, flipped)
        assert got.shape == want.shape and np.abs(want).max() > 1e-2
        assert np.max(np.abs(got - want)) <= TOLERANCE

    runs = {}
    for name, model, backend in (("torch", trained_checkpoint, "torch"),
                                 ("memory", trained_checkpoint, "onnxruntime"),
                                 ("file", exported, None)):
        runs[name] = run_infer_command(model, images, det, None, tmp_path / name,
                                       backend=backend, threads=1, batch=5)
    ref = runs["torch"]["results"]
    assert len(ref) > 20  # the detection file's people, after OKS-NMS
    for name in ("memory", "file"):
        res = runs[name]["results"]
        assert [(r["image_id"], r["bbox"]) for r in res] == [(r["image_id"], r["bbox"])
                                                             for r in ref]
        got = np.array([r["keypoints"] for r in res]).reshape(len(res), -1, 3)
        want = np.array([r["keypoints"] for r in ref]).reshape(len(ref), -1, 3)
        # Joint scores are heatmap maxima: they move by at most the heatmaps' difference
        # (plus the json's rounding to 3 decimals). The locations are argmaxes and the sign
        # of a neighbour difference: the same, but for a near-tie that 1e-4 can tip (none
        # on these images; allowed for one joint in a hundred).
        assert np.max(np.abs(got[..., 2] - want[..., 2])) <= TOLERANCE + 1e-3
        same = np.all(got[..., :2] == want[..., :2], axis=-1)
        assert same.mean() >= 0.99, np.argwhere(~same)
        assert np.allclose([r["score"] for r in res], [r["score"] for r in ref],
                           atol=TOLERANCE)

    run = json.loads((tmp_path / "file" / "run.json").read_text())
    assert run["backend"] == "onnxruntime" and run["threads"] == 1 and run["batch"] == 5
    assert run["checkpoint"] == str(exported)
    t = run["timing"]
    assert t["images"] == 4 and t["persons"] >= len(ref)
    assert 0 < t["network_s"] <= t["predict_s"] <= t["wall_s"]
    assert t["ms_per_image"] > 0 and t["ms_per_person"] > 0
    memory = json.loads((tmp_path / "memory" / "run.json").read_text())
    assert memory["exported_in_memory_max_abs_diff"] <= TOLERANCE
    assert json.loads((tmp_path / "torch" / "run.json").read_text())["backend"] == "torch"


def test_threads_reach_both_runtimes(exported, trained_checkpoint):
    before = torch.get_num_threads()
    try:
        p = load_predictor(exported, NetworkOptions.parse(exported, None, "2", "3"))
        assert (p.backend, p.threads, p.cfg.test.batch_size) == ("onnxruntime", 2, 3)
        assert torch.get_num_threads() == 2
        import onnxruntime

        session = ort_session(onnxruntime, exported, 2, exported)
        assert session.get_session_options().intra_op_num_threads == 2
        # Defaults: torch for a .pt, torch's thread count, the checkpoint's batch size.
        torch.set_num_threads(1)
        q = load_predictor(trained_checkpoint, NetworkOptions.parse(trained_checkpoint))
        assert (q.backend, q.threads, q.cfg.test.batch_size) == ("torch", 1, 16)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("blocked", ["onnxruntime", "onnx"])
def test_without_onnxruntime_one_line_and_exit_2(blocked, tiny_checkpoint, exported, tmp_path,
                                                 monkeypatch, capsys):
    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name.split(".")[0] == blocked:
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    image = Path(__file__).resolve().parents[2]  # any path: refused before it is read
    cases = [[str(tiny_checkpoint), "--backend", "onnxruntime"]]
    if blocked == "onnxruntime":  # an .onnx file needs onnxruntime only
        cases.append([str(exported)])
    for model in cases:
        code = main(["infer", "--checkpoint", *model, "--image", str(image),
                     "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err and "Traceback" not in err
        assert f"the package {blocked!r} is not installed" in err
        assert "pip install 'autopose[export]'" in err
    assert not (tmp_path / "o").exists()


def test_a_checkpoint_that_exports_wrong_is_not_run(tiny_checkpoint, mmpose_coco, tmp_path,
                                                    monkeypatch, capsys):
    import autopose.engine.infer_backend as backend

    monkeypatch.setattr(backend, "session_diff", lambda *a, **k: float("nan"))
    image = Path(mmpose_coco["images"]) / "000000000785.jpg"
    assert main(["infer", "--checkpoint", str(tiny_checkpoint), "--image", str(image),
                 "--backend", "onnxruntime", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "export check failed" in err and "use --backend torch" in err and "\n" not in err
    assert not (tmp_path / "o").exists()
