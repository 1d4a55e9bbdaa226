"""COCO-format keypoint sets for top-down pose: ground-truth boxes or detection results.

Annotations are validated as they are read: anything malformed is a one-line
:class:`UserError` naming the file and the annotation or image id; records that the
reference pipelines drop (crowd, no labelled keypoint, zero-area box) are skipped and
counted in one summary line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autopose.config import DataConfig, SplitConfig
from autopose.data.keypoints import KeypointInfo, from_coco_category
from autopose.data.records import (ImageChecker, PersonRecord, SkipCounter, finite_floats,
                                   integer, json_list, number, require, shown, text)
from autopose.io import read_json
from autopose.data.transforms import box_to_center_scale
from autopose.errors import UserError


@dataclass
class CocoSet:
    """A parsed COCO-format keypoint file: metadata, images and person records.

    ``images`` holds every image entry; ``checker`` remembers each image file's verdict, so
    that detections on an image skipped as corrupt (``data.corrupt_images=skip``) are
    skipped too, without a second check.
    """

    ann_file: Path
    image_dir: Path
    info: KeypointInfo
    category_id: int
    images: dict[int, dict[str, Any]]
    records: list[PersonRecord]
    checker: ImageChecker = field(default_factory=ImageChecker)


def _person_category(doc: dict[str, Any], data: DataConfig, source: str) -> tuple[int, KeypointInfo]:
    cats = json_list(doc["categories"], source, "categories")
    for i, c in enumerate(cats):
        if not isinstance(c, dict):
            raise UserError(f"{source}: categories[{i}]: expected an object, got {shown(c)}")
        require(c, ("id",), f"{source}: categories[{i}]")
        integer(c["id"], f"{source}: categories[{i}]", "id")
    kp_cats = [c for c in cats if c.get("keypoints")]
    if not kp_cats:
        raise UserError(f"{source}: categories: no category with 'keypoints'")
    if len(kp_cats) > 1:
        ids = [c.get("id") for c in kp_cats]
        raise UserError(f"{source}: categories: {len(kp_cats)} keypoint categories {ids}; "
                        "autopose expects one")
    cat = kp_cats[0]
    return cat["id"], from_coco_category(cat, data.keypoints, source)


def _clean_box(bbox: np.ndarray, width: float, height: float) -> np.ndarray | None:
    """Clip a box to the image as the reference code does; None for an empty box."""
    x, y, w, h = bbox
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if w * h <= 0 or x2 < x1 or y2 < y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)


def _read_images(entries: list[Any], src: str) -> dict[int, dict[str, Any]]:
    """The ``images`` entries by id, every field the pipeline reads checked."""
    images: dict[int, dict[str, Any]] = {}
    for n, im in enumerate(entries):
        if not isinstance(im, dict):
            raise UserError(f"{src}: images[{n}]: expected an object, got {shown(im)}")
        require(im, ("id", "file_name", "width", "height"), f"{src}: images[{n}]")
        image_id = integer(im["id"], f"{src}: images[{n}]", "id")
        where = f"{src}: image id={image_id}"
        if image_id in images:
            raise UserError(f"{where}: id: used by two images")
        text(im["file_name"], where, "file_name")
        integer(im["width"], where, "width", minimum=1)
        integer(im["height"], where, "height", minimum=1)
        images[image_id] = im
    return images


def _annotation_ids(ann: Any, n: int, src: str, seen: set[int]) -> tuple[str, int, int]:
    """``(where, image_id, category_id)`` of annotation ``n``: the fields every annotation
    must have, whatever its category (pycocotools indexes the whole file by them)."""
    if not isinstance(ann, dict):
        raise UserError(f"{src}: annotations[{n}]: expected an object, got {shown(ann)}")
    require(ann, ("id",), f"{src}: annotations[{n}]")
    aid = integer(ann["id"], f"{src}: annotations[{n}]", "id")
    where = f"{src}: annotation id={aid}"
    if aid in seen:
        raise UserError(f"{where}: id: used by two annotations")
    seen.add(aid)
    require(ann, ("image_id", "category_id"), where)
    return where, integer(ann["image_id"], where, "image_id"), \
        integer(ann["category_id"], where, "category_id")


def _person_fields(ann: dict[str, Any], where: str, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(keypoints (K, 3), bbox, area)`` of a person annotation, each checked; crowd
    annotations too, since COCOeval reads them."""
    require(ann, ("bbox", "area", "keypoints"), where)
    bbox = finite_floats(ann["bbox"], 4, where, "bbox")
    if bbox[2] < 0 or bbox[3] < 0:
        raise UserError(f"{where}: bbox: negative width or height {bbox.tolist()}")
    area = number(ann["area"], where, "area", minimum=0)
    kps = finite_floats(ann["keypoints"], 3 * k, where, "keypoints").reshape(k, 3)
    if not np.isin(kps[:, 2], (0, 1, 2)).all():
        raise UserError(f"{where}: keypoints: visibility flags must be 0, 1 or 2")
    if ann.get("iscrowd", 0) not in (0, 1) or isinstance(ann.get("iscrowd"), (bool, float)):
        raise UserError(f"{where}: iscrowd: expected 0 or 1, got {shown(ann['iscrowd'])}")
    if "num_keypoints" in ann:
        integer(ann["num_keypoints"], where, "num_keypoints", minimum=0)
    return kps, bbox, area


def load_coco(split: SplitConfig, data: DataConfig, role: str = "val",
              quiet: bool = False) -> CocoSet:
    """Read ``split.ann`` and return its person records with ground-truth boxes.

    ``role`` names the split in messages (``data.train`` or ``data.val``). Every field the
    pipeline or COCOeval reads is checked here, with its type and range, so that a bad file
    stops before any work with one line naming the annotation (or image) and the field.
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
    require(doc, ("images", "annotations", "categories"), src)
    cat_id, info = _person_category(doc, data, src)
    k = info.num_joints
    images = _read_images(json_list(doc["images"], src, "images"), src)

    h_in, w_in = data.input_size
    aspect = w_in / h_in
    skips = SkipCounter(src)
    checker = ImageChecker(data.corrupt_images)
    records: list[PersonRecord] = []
    seen: set[int] = set()
    known_cats = {c["id"] for c in doc["categories"]}
    for n, ann in enumerate(json_list(doc["annotations"], src, "annotations")):
        where, image_id, category_id = _annotation_ids(ann, n, src, seen)
        if category_id != cat_id:
            if category_id not in known_cats:
                raise UserError(f"{where}: unknown category_id {category_id}")
            continue  # another category: not a person
        if image_id not in images:
            raise UserError(f"{where}: image_id {image_id} is not in 'images'")
        kps, bbox, area = _person_fields(ann, where, k)
        if ann.get("iscrowd", 0):
            skips.skip("crowd")
            continue
        im = images[image_id]
        box = _clean_box(bbox, float(im["width"]), float(im["height"]))
        if box is None or area <= 0:
            skips.skip("zero-area box")
            continue
        if kps[:, 2].max() == 0:
            skips.skip("no labelled keypoint")
            continue
        path = image_dir / im["file_name"]
        if not checker.usable(path, image_id, src):
            skips.skip("damaged image")
            continue
        center, scale = box_to_center_scale(box, aspect, data.bbox_padding)
        records.append(PersonRecord(
            image_path=str(path), image_id=image_id, center=center, scale=scale,
            joints=kps[:, :2].astype(np.float32), vis=(kps[:, 2] > 0).astype(np.float32),
            ann_id=ann["id"], bbox=box))
    if not quiet:
        skips.report(len(records))
    if not records:
        raise UserError(f"{src}: no usable person annotation (empty dataset)")
    return CocoSet(ann_file, image_dir, info, cat_id, images, records, checker)


def detection_fields(det: Any, where: str, score_default: float | None = None
                     ) -> tuple[int | None, np.ndarray, float]:
    """``(category_id or None, box [x, y, w, h], score)`` of one entry of a COCO results
    file, each checked; a missing score is ``score_default`` (None: required)."""
    if not isinstance(det, dict):
        raise UserError(f"{where}: expected an object, got {shown(det)}")
    require(det, ("bbox",) if score_default is not None else ("bbox", "score"), where)
    category = integer(det["category_id"], where, "category_id") if "category_id" in det \
        else None
    box = finite_floats(det["bbox"], 4, where, "bbox")
    score = number(det.get("score", score_default), where, "score")
    return category, box, score


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
        category, box, score = detection_fields(det, where)
        require(det, ("image_id",), where)
        image_id = integer(det["image_id"], where, "image_id")
        if category is not None and category != gt.category_id:
            skips.skip("other category")
            continue
        if image_id not in gt.images:
            raise UserError(f"{where}: image_id {image_id} is not in {gt.ann_file}")
        if score < score_thresh:
            skips.skip("below score threshold")
            continue
        if box[2] <= 0 or box[3] <= 0:
            skips.skip("zero-area box")
            continue
        path = gt.image_dir / str(gt.images[image_id]["file_name"])
        if not gt.checker.usable(path, image_id, str(gt.ann_file)):
            skips.skip("damaged image")
            continue
        joints = np.zeros((k, 2), np.float32)
        vis = np.zeros(k, np.float32)
        if attach_gt and by_image.get(image_id):
            best = max(by_image[image_id], key=lambda r: _iou(box, r.bbox))
            if _iou(box, best.bbox) > 0:
                joints, vis = best.joints.copy(), best.vis.copy()
        center, scale = box_to_center_scale(box, aspect, data.bbox_padding)
        records.append(PersonRecord(str(path), image_id, center, scale, joints, vis,
                                    box_score=score, bbox=box))
    if not quiet:
        skips.report(len(records), "person boxes")
    if not records:
        raise UserError(f"{src}: no usable detection (empty dataset)")
    return records
