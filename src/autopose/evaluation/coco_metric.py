"""COCO keypoint AP and AR: results json, OKS-NMS, and the official COCOeval (pycocotools)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from autopose.evaluation.nms import oks_nms

STAT_NAMES = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")


def coco_results(image_ids: np.ndarray, coords: np.ndarray, maxvals: np.ndarray,
                 scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
                 oks_thre: float, category_id: int = 1) -> list[dict[str, Any]]:
    """Per-person predictions -> COCO results, OKS-NMS applied within each image.

    image_ids ``(N,)``, coords ``(N, K, 2)`` image pixels, maxvals ``(N, K)``, scores ``(N,)``
    (instance scores), areas ``(N,)`` (box areas in px, for NMS).
    """
    kpts = np.concatenate([coords, maxvals[..., None]], axis=-1)
    results: list[dict[str, Any]] = []
    for image_id in np.unique(image_ids):
        idx = np.nonzero(image_ids == image_id)[0]
        keep = oks_nms(kpts[idx], scores[idx], areas[idx], oks_thre, sigmas)
        for j in idx[keep]:
            results.append({
                "image_id": int(image_id),
                "category_id": int(category_id),
                "keypoints": [round(float(v), 3) for v in kpts[j].reshape(-1)],
                "score": float(scores[j]),
            })
    return results


def coco_evaluate(ann_file: str | Path, results: list[dict[str, Any]],
                  sigmas: np.ndarray) -> dict[str, float]:
    """Score results with pycocotools' COCOeval (keypoints); the ten standard stats."""
    if not results:
        return {name: 0.0 for name in STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        cat_ids = sorted({r["category_id"] for r in results})
        for ann in gt.loadAnns(gt.getAnnIds(catIds=cat_ids)):
            # COCOeval reads num_keypoints, which the format makes optional (and the loader
            # checks when given): the count of labelled joints is what it means.
            ann.setdefault("num_keypoints", int(sum(v > 0 for v in ann["keypoints"][2::3])))
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.useSegm = None
        # Only the predicted (person) category: annotations of other categories need none
        # of the keypoint fields, which COCOeval would otherwise read from them.
        ev.params.catIds = cat_ids
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCOeval marks "no ground truth in this range" as -1; keep it visible as such.
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}


def format_table(metrics: dict[str, float], percent: bool = False) -> str:
    """A two-line table: names, then values (fractions, or percent for PCKh)."""
    names = list(metrics)
    widths = [max(len(n), 6) for n in names]
    fmt = "{:.2f}" if percent else "{:.4f}"
    head = " | ".join(n.rjust(w) for n, w in zip(names, widths))
    vals = " | ".join(fmt.format(metrics[n]).rjust(w) for n, w in zip(names, widths))
    return f"| {head} |\n| {vals} |"
