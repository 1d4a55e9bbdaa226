"""The whole test path with ground-truth heatmaps: the codec's upper bound on real data."""

import json
import sys
from pathlib import Path

import pytest
import torch

from autopose.cli import main
from conftest import REPO, val_overrides

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from test_pckh import write_gt_for  # noqa: E402


def run_oracle(tmp_path: Path, overrides: list[str], config: str | None = None) -> dict:
    out = tmp_path / "run"
    if config:  # replaces the --config that val_overrides puts first
        overrides = ["--config", config] + overrides[2:]
    assert main(["test", "--oracle", "--out", str(out)] + overrides) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "config.yaml").is_file() and (out / "run.json").is_file()
    return metrics


@pytest.mark.parametrize("flip", [True, False])
def test_oracle_coco_mini_gt_boxes(coco_mini, tmp_path, flip):
    m = run_oracle(tmp_path, val_overrides(coco_mini["images"], coco_mini["ann"],
                                           **{"test.flip": flip}))
    assert set(m) == {"AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75",
                      "AR (M)", "AR (L)"}
    assert all(0 <= v <= 1 for v in m.values())
    assert m["AP"] >= 0.90


@pytest.mark.parametrize("flip", [True, False])
def test_oracle_mmpose_coco_gt_and_detection_boxes(mmpose_coco, tmp_path, flip):
    gt = run_oracle(tmp_path / "gt", val_overrides(mmpose_coco["images"], mmpose_coco["ann"],
                                                   **{"test.flip": flip}))
    det = run_oracle(tmp_path / "det", val_overrides(
        mmpose_coco["images"], mmpose_coco["ann"],
        **{"test.flip": flip, "data.val.det_file": mmpose_coco["det"]}))
    assert gt["AP"] >= 0.90
    assert 0 < det["AP"] < gt["AP"]
    results = json.loads((tmp_path / "det" / "run" / "keypoint_results.json").read_text())
    assert {r["image_id"] for r in results} <= {785, 40083, 196141, 197388}
    assert all(len(r["keypoints"]) == 51 for r in results)


def test_oracle_mpii_pckh(mmpose_mpii, tmp_path):
    write_gt_for(mmpose_mpii["ann"], tmp_path / "gt_valid.mat")
    m = run_oracle(tmp_path, val_overrides(
        mmpose_mpii["images"], mmpose_mpii["ann"],
        **{"data.val.pckh_gt": tmp_path / "gt_valid.mat"}),
        config=str(REPO / "configs" / "mpii" / "autopose_256x256.yaml"))
    assert list(m)[:2] == ["Head", "Shoulder"]
    assert m["Mean"] >= 95.0


def test_oracle_runs_in_dataloader_workers(mmpose_coco, tmp_path):
    ov = val_overrides(mmpose_coco["images"], mmpose_coco["ann"])
    ov[-1] = "data.workers=2"
    assert run_oracle(tmp_path, ov + ["test.batch_size=4"])["AP"] >= 0.90


def test_oracle_dark_codec_removes_rounding_loss_at_low_resolution(coco_mini, tmp_path):
    """At 64x48 (16x12 heatmaps) rounding joints to the grid costs the standard codec much of
    its AP on real people; DARK's sub-pixel targets and decoding recover it."""
    runs = {}
    for codec in ("standard", "dark"):
        runs[codec] = run_oracle(tmp_path / codec, val_overrides(
            coco_mini["images"], coco_mini["ann"],
            **{"test.flip": False, "data.input_size": "[64,48]", "data.codec": codec}))
    # Measured: standard 0.56, dark 0.94 (coco-mini, ground-truth boxes, no flip).
    assert runs["dark"]["AP"] >= 0.9
    assert runs["dark"]["AP"] > runs["standard"]["AP"] + 0.25


def test_unknown_codec_is_a_one_line_error(coco_mini, tmp_path, capsys):
    code = main(["test", "--oracle", "--out", str(tmp_path / "run")]
                + val_overrides(coco_mini["images"], coco_mini["ann"], **{"data.codec": "udp"}))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert [ln for ln in err.splitlines() if "error" in ln] == [
        "autopose: error: config: data.codec: expected one of standard, dark, got 'udp'"]


@pytest.mark.parametrize("n", [2, 3])
def test_load_batches_part_is_that_share_of_the_whole(coco_mini, n):
    """A process's share of the evaluation batches (the search reward's) is decoded alone
    and equals its slice of the whole split's batches."""
    from autopose.config import load_config
    from autopose.evaluation.pipeline import build_eval_set, load_batches

    ov = val_overrides(coco_mini["images"], coco_mini["ann"],
                       **{"test.batch_size": 3, "data.input_size": "[64,48]"})
    cfg = load_config(ov[1], ov[2:])  # ov: --config CFG key=value ...
    eval_set = build_eval_set(cfg, quiet=True)
    whole = load_batches(eval_set, cfg)
    assert len(whole) > n and whole[-1]["index"].numel() <= 3
    for k in range(n):
        part = load_batches(eval_set, cfg, (k, n))
        want = whole[k::n]
        assert len(part) == len(want)
        for a, b in zip(part, want):
            assert torch.equal(a["index"], b["index"]) and torch.equal(a["image"], b["image"])
