"""Object keypoint similarity, exactly as pycocotools' ``COCOeval.computeOks`` defines it."""

from __future__ import annotations

import numpy as np


def oks(gt: np.ndarray, gt_area: float, dets: np.ndarray, sigmas: np.ndarray,
        gt_bbox: np.ndarray | None = None) -> np.ndarray:
    """OKS of detections against one ground-truth person.

    gt ``(K, 3)`` (x, y, v), dets ``(N, K, 2+)``, sigmas ``(K,)`` -> ``(N,)``.
    With no labelled ground-truth joint, distances are measured to a box twice the size of
    ``gt_bbox`` (``[x, y, w, h]``), as pycocotools does.
    """
    dets = np.asarray(dets, dtype=np.float64)
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    xg, yg, vg = gt[:, 0], gt[:, 1], gt[:, 2]
    labelled = vg > 0
    xd, yd = dets[..., 0], dets[..., 1]
    if labelled.any():
        dx, dy = xd - xg, yd - yg
    else:
        if gt_bbox is None:
            raise ValueError("a ground truth with no labelled joint needs gt_bbox")
        x, y, w, h = gt_bbox
        x0, x1, y0, y1 = x - w, x + 2 * w, y - h, y + 2 * h
        dx = np.maximum(0, x0 - xd) + np.maximum(0, xd - x1)
        dy = np.maximum(0, y0 - yd) + np.maximum(0, yd - y1)
    e = (dx ** 2 + dy ** 2) / var / (gt_area + np.spacing(1)) / 2
    if labelled.any():
        e = e[:, labelled]
    return np.exp(-e).sum(axis=1) / e.shape[1]


def oks_between(a: np.ndarray, area_a: float, b: np.ndarray, areas_b: np.ndarray,
                sigmas: np.ndarray, vis_thre: float | None) -> np.ndarray:
    """Symmetric OKS used by OKS-NMS (the reference pose code's ``oks_iou``).

    a ``(K, 3)`` and b ``(N, K, 3)`` are predictions (x, y, score); the area is the mean of
    the two boxes'; with ``vis_thre`` only joints scored above it in both count.
    """
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    d2 = (b[..., 0] - a[:, 0]) ** 2 + (b[..., 1] - a[:, 1]) ** 2
    e = d2 / var / ((area_a + areas_b[:, None]) / 2 + np.spacing(1)) / 2
    if vis_thre is None:
        return np.exp(-e).mean(axis=1)
    keep = (a[:, 2] > vis_thre)[None, :] & (b[..., 2] > vis_thre)
    count = keep.sum(axis=1)
    total = (np.exp(-e) * keep).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)
