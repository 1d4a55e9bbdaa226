import json
from pathlib import Path

import numpy as np
import pytest

from autopose.errors import UserError
from autopose.evaluation.pckh import load_pckh_gt, pckh, write_pckh_gt


def write_gt_for(ann: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """gt_valid.mat-layout file for an MPII json; head box from upper neck to head top."""
    recs = json.loads(Path(ann).read_text())
    joints = np.array([r["joints"] for r in recs], dtype=np.float64)  # 1-based, (N, 16, 2)
    missing = 1 - np.array([r["joints_vis"] for r in recs], dtype=np.float64)
    neck, top = joints[:, 8], joints[:, 9]
    side = np.linalg.norm(top - neck, axis=1, keepdims=True)
    mid = (neck + top) / 2
    headboxes = np.stack([mid - side / 2, mid + side / 2], axis=1)
    write_pckh_gt(path, joints, missing, headboxes)
    head_size = 0.6 * np.linalg.norm(headboxes[:, 1] - headboxes[:, 0], axis=1)
    return joints, head_size


def test_ground_truth_scores_100_and_moved_joints_0(mmpose_mpii, tmp_path):
    joints, head_size = write_gt_for(mmpose_mpii["ann"], tmp_path / "gt_valid.mat")
    gt = load_pckh_gt(tmp_path / "gt_valid.mat")
    perfect = pckh(joints - 1.0, gt)
    assert all(v == pytest.approx(100.0) for v in perfect.values()), perfect
    angle = np.random.default_rng(0).uniform(0, 2 * np.pi, joints.shape[:2])
    step = 0.6 * head_size[:, None, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    moved = pckh(joints - 1.0 + step, gt)
    assert all(v == pytest.approx(0.0) for v in moved.values()), moved
    assert list(perfect) == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle",
                             "Mean", "Mean@0.1"]


def test_damaged_or_incomplete_gt_file(tmp_path):
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"not a mat file")
    with pytest.raises(UserError, match="bad.mat"):
        load_pckh_gt(bad)
    from scipy.io import savemat
    savemat(str(tmp_path / "partial.mat"), {"pos_gt_src": np.zeros((16, 2, 3))})
    with pytest.raises(UserError, match="missing 'jnt_missing'"):
        load_pckh_gt(tmp_path / "partial.mat")
