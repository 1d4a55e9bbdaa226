"""COCO-format keypoint sets for top-down pose: ground-truth boxes or detection results.

Annotations are validated as they are read: anything malformed is a one-line
:class:`UserError` naming the file and the annotation or image id; records that the
reference pipelines drop (crowd, no labelled keypoint, zero-area box) are skipped and
counted in one summary line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autopose.config import DataConfig, SplitConfig
from autopose.data.keypoints import KeypointInfo, from_coco_category
from autopose.data.records import PersonRecord, SkipCounter, finite_floats
from autopose.io import read_json
from autopose.data.transforms import box_to_center_scale
from autopose.errors import UserError


@dataclass
class CocoSet:
    """A parsed COCO-format keypoint file: metadata, images and person records."""

    ann_file: Path
    image_dir: Path
    info: KeypointInfo
    category_id: int
    images: dict[int, dict[str, Any]]
    records: list[PersonRecord]


def _require(obj: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for k in keys:
        if k not in obj:
            raise UserError(f"{where}: missing '{k}'")


def _person_category(doc: dict[str, Any], data: DataConfig, source: str) -> tuple[int, KeypointInfo]:
    cats = doc["categories"]
    if not isinstance(cats, list):
        raise UserError(f"{source}: categories: not a list")
    kp_cats = [c for c in cats if isinstance(c, dict) and c.get("keypoints")]
    if not kp_cats:
        raise UserError(f"{source}: categories: no category with 'keypoints'")
    if len(kp_cats) > 1:
        ids = [c.get("id") for c in kp_cats]
        raise UserError(f"{source}: categories: {len(kp_cats)} keypoint categories {ids}; "
                        "autopose expects one")
    cat = kp_cats[0]
    _require(cat, ("id",), f"{source}: categories[0]")
    return int(cat["id"]), from_coco_category(cat, data.keypoints, source)


def _clean_box(bbox: np.ndarray, width: float, height: float) -> np.ndarray | None:
    """Clip a box to the image as the reference code does; None for an empty box."""
    x, y, w, h = bbox
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if w * h <= 0 or x2 < x1 or y2 < y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)


def load_coco(split: SplitConfig, data: DataConfig, role: str = "val",
              quiet: bool = False) -> CocoSet:
    """Read ``split.ann`` and return its person records with ground-truth boxes.

    ``role`` names the split in messages (``data.train`` or ``data.val``).
    """
    if split.ann is None or split.images is None:
        raise UserError(f"config: data.{role}.ann and data.{role}.images are required")
    ann_file, image_dir = Path(split.ann), Path(split.images)
    if not image_dir.is_dir():
        raise UserError(f"{image_dir}: data.{role}.images: folder not found")
    doc = read_json(ann_file, f"data.{role}.ann")
    src = str(ann_file)
    if not isinstance(doc, dict):
        raise UserError(f"{src}: top level must be an object with images, annotations, categories")
    _require(doc, ("images", "annotations", "categories"), src)
    cat_id, info = _person_category(doc, data, src)
    k = info.num_joints

    images: dict[int, dict[str, Any]] = {}
    for im in doc["images"]:
        where = f"{src}: image id={im.get('id') if isinstance(im, dict) else '?'}"
        if not isinstance(im, dict):
            raise UserError(f"{where}: not an object")
        _require(im, ("id", "file_name", "width", "height"), where)
        images[int(im["id"])] = im

    h_in, w_in = data.input_size
    aspect = w_in / h_in
    skips = SkipCounter(src)
    records: list[PersonRecord] = []
    checked: set[int] = set()
    for ann in doc["annotations"]:
        aid = ann.get("id", "?") if isinstance(ann, dict) else "?"
        where = f"{src}: annotation id={aid}"
        if not isinstance(ann, dict):
            raise UserError(f"{where}: not an object")
        _require(ann, ("image_id", "category_id", "bbox"), where)
        if int(ann["category_id"]) != cat_id:
            known = {c.get("id") for c in doc["categories"] if isinstance(c, dict)}
            if ann["category_id"] not in known:
                raise UserError(f"{where}: unknown category_id {ann['category_id']}")
            continue  # another category: not a person
        image_id = int(ann["image_id"])
        if image_id not in images:
            raise UserError(f"{where}: image_id {image_id} is not in 'images'")
        if ann.get("iscrowd", 0):
            skips.skip("crowd")
            continue
        if "keypoints" not in ann:
            raise UserError(f"{where}: missing 'keypoints'")
        kps = finite_floats(ann["keypoints"], 3 * k, where, "keypoints").reshape(k, 3)
        bbox = finite_floats(ann["bbox"], 4, where, "bbox")
        if bbox[2] < 0 or bbox[3] < 0:
            raise UserError(f"{where}: bbox: negative width or height {bbox.tolist()}")
        if not np.isin(kps[:, 2], (0, 1, 2)).all():
            raise UserError(f"{where}: keypoints: visibility flags must be 0, 1 or 2")
        im = images[image_id]
        box = _clean_box(bbox, float(im["width"]), float(im["height"]))
        if box is None or float(ann.get("area", 1.0)) <= 0:
            skips.skip("zero-area box")
            continue
        if kps[:, 2].max() == 0:
            skips.skip("no labelled keypoint")
            continue
        path = image_dir / str(im["file_name"])
        if image_id not in checked:
            if not path.is_file():
                raise UserError(f"{path}: image id={image_id}: file missing "
                                f"(referenced by {src})")
            checked.add(image_id)
        center, scale = box_to_center_scale(box, aspect, data.bbox_padding)
        records.append(PersonRecord(
            image_path=str(path), image_id=image_id, center=center, scale=scale,
            joints=kps[:, :2].astype(np.float32), vis=(kps[:, 2] > 0).astype(np.float32),
            ann_id=int(ann["id"]) if "id" in ann else None, bbox=box))
    if not quiet:
        skips.report(len(records))
    if not records:
        raise UserError(f"{src}: no usable person annotation (empty dataset)")
    return CocoSet(ann_file, image_dir, info, cat_id, images, records)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def load_detections(det_file: str | Path, gt: CocoSet, data: DataConfig,
                    score_thresh: float = 0.0, attach_gt: bool = False,
                    quiet: bool = False) -> list[PersonRecord]:
    """Person boxes from a COCO results file (``[{image_id, category_id, bbox, score}]``).

    With ``attach_gt`` each box carries the joints of the ground-truth person it overlaps
    most (for the oracle test); otherwise its joints are zeros.
    """
    src = str(det_file)
    dets = read_json(det_file, "data.val.det_file")
    if not isinstance(dets, list):
        raise UserError(f"{src}: expected a list of detections")
    by_image: dict[int, list[PersonRecord]] = {}
    if attach_gt:
        for r in gt.records:
            by_image.setdefault(r.image_id, []).append(r)
    h_in, w_in = data.input_size
    aspect = w_in / h_in
    k = gt.info.num_joints
    skips = SkipCounter(src)
    records: list[PersonRecord] = []
    for i, det in enumerate(dets):
        where = f"{src}: detection #{i}"
        if not isinstance(det, dict):
            raise UserError(f"{where}: not an object")
        _require(det, ("image_id", "bbox", "score"), where)
        if int(det.get("category_id", gt.category_id)) != gt.category_id:
            skips.skip("other category")
            continue
        image_id = int(det["image_id"])
        if image_id not in gt.images:
            raise UserError(f"{where}: image_id {image_id} is not in {gt.ann_file}")
        score = float(finite_floats([det["score"]], 1, where, "score")[0])
        if score < score_thresh:
            skips.skip("below score threshold")
            continue
        box = finite_floats(det["bbox"], 4, where, "bbox")
        if box[2] <= 0 or box[3] <= 0:
            skips.skip("zero-area box")
            continue
        joints = np.zeros((k, 2), np.float32)
        vis = np.zeros(k, np.float32)
        if attach_gt and by_image.get(image_id):
            best = max(by_image[image_id], key=lambda r: _iou(box, r.bbox))
            if _iou(box, best.bbox) > 0:
                joints, vis = best.joints.copy(), best.vis.copy()
        center, scale = box_to_center_scale(box, aspect, data.bbox_padding)
        path = gt.image_dir / str(gt.images[image_id]["file_name"])
        records.append(PersonRecord(str(path), image_id, center, scale, joints, vis,
                                    box_score=score, bbox=box))
    if not quiet:
        skips.report(len(records), "person boxes")
    if not records:
        raise UserError(f"{src}: no usable detection (empty dataset)")
    return records
