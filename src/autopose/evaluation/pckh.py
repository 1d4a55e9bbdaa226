"""MPII PCKh, as the reference code computes it from a ``gt_valid.mat``-layout file.

The file holds ``pos_gt_src`` ``(16, 2, N)`` (1-based pixels), ``jnt_missing`` ``(16, N)``
and ``headboxes_src`` ``(2, 2, N)``; the head size is 0.6 times the head box diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import loadmat, savemat

from autopose.errors import UserError
from autopose.io import atomic_write

HEAD_SIZE_FACTOR = 0.6
# MPII joint indices (see keypoints.MPII16) grouped as the reference reports them.
_GROUPS = {
    "Head": (9,),
    "Shoulder": (12, 13),
    "Elbow": (11, 14),
    "Wrist": (10, 15),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankle": (0, 5),
}
_EXCLUDED = (6, 7)  # pelvis and thorax are not part of the mean


@dataclass
class PCKhGroundTruth:
    pos: np.ndarray  # (16, 2, N), 1-based
    missing: np.ndarray  # (16, N)
    headboxes: np.ndarray  # (2, 2, N)

    @property
    def num_persons(self) -> int:
        return self.pos.shape[2]


def load_pckh_gt(path: str | Path) -> PCKhGroundTruth:
    try:
        mat = loadmat(str(path))
    except FileNotFoundError:
        raise UserError(f"{path}: data.val.pckh_gt: file not found") from None
    except Exception as e:  # scipy raises several types for a damaged file
        raise UserError(f"{path}: data.val.pckh_gt: not a readable .mat file ({e.__class__.__name__})") from None
    for key in ("pos_gt_src", "jnt_missing", "headboxes_src"):
        if key not in mat:
            raise UserError(f"{path}: missing '{key}'")
    gt = PCKhGroundTruth(mat["pos_gt_src"].astype(np.float64),
                         mat["jnt_missing"].astype(np.float64),
                         mat["headboxes_src"].astype(np.float64))
    n = gt.num_persons
    if gt.pos.shape != (16, 2, n) or gt.missing.shape != (16, n) or gt.headboxes.shape != (2, 2, n):
        raise UserError(f"{path}: pos_gt_src / jnt_missing / headboxes_src shapes "
                        f"{gt.pos.shape} / {gt.missing.shape} / {gt.headboxes.shape} do not agree")
    return gt


def write_pckh_gt(path: str | Path, joints: np.ndarray, missing: np.ndarray,
                  headboxes: np.ndarray) -> None:
    """Write ground truth in the reference layout.

    joints ``(N, 16, 2)`` 1-based, missing ``(N, 16)`` (1 = not labelled), headboxes
    ``(N, 2, 2)`` (top-left and bottom-right corners).
    """
    mdict = {
        "pos_gt_src": np.transpose(np.asarray(joints, np.float64), (1, 2, 0)),
        "jnt_missing": np.asarray(missing, np.float64).T,
        "headboxes_src": np.transpose(np.asarray(headboxes, np.float64), (1, 2, 0)),
    }
    atomic_write(path, lambda p: savemat(str(p), mdict))


def pckh(preds: np.ndarray, gt: PCKhGroundTruth, threshold: float = 0.5) -> dict[str, float]:
    """PCKh in percent for predictions ``(N, 16, 2)`` in 0-based image pixels.

    Returns Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean (at ``threshold``) and
    Mean@0.1; the means weight each joint by its number of labelled instances.
    """
    if preds.shape[0] != gt.num_persons:
        raise UserError(f"PCKh: {preds.shape[0]} predictions for {gt.num_persons} "
                        "ground-truth persons (data.val.pckh_gt must match data.val.ann)")
    pred = np.transpose(preds[..., :2] + 1.0, (1, 2, 0))  # (16, 2, N), 1-based like the gt
    visible = 1 - gt.missing
    err = np.linalg.norm(pred - gt.pos, axis=1)
    head = np.linalg.norm(gt.headboxes[1] - gt.headboxes[0], axis=0) * HEAD_SIZE_FACTOR
    scaled = err / head[None, :] * visible
    count = visible.sum(axis=1)

    def pck_at(thr: float) -> np.ndarray:
        hit = ((scaled <= thr) * visible).sum(axis=1)
        return 100.0 * hit / np.maximum(count, 1)

    at = pck_at(threshold)
    at01 = pck_at(0.1)
    weight = count.astype(np.float64).copy()
    weight[list(_EXCLUDED)] = 0
    weight /= max(weight.sum(), 1)
    out = {name: float(np.mean(at[list(idx)])) for name, idx in _GROUPS.items()}
    out["Mean"] = float((at * weight).sum())
    out["Mean@0.1"] = float((at01 * weight).sum())
    return out
