"""Where ``autopose infer`` finds its people: person boxes from a detector's file, one given
box, or the whole image (or video frame), each made into a record to crop.

Boxes come from, in this order:

* ``--boxes DET.json``: person detections in the COCO detection-results format, what HRNet
  and mmpose evaluate with and what any detector can be made to write::

      [{"image_id": 785, "category_id": 1, "bbox": [x, y, w, h], "score": 0.98}, ...]

  An image may be named by ``"file_name"`` instead of ``"image_id"``; for a video,
  ``image_id`` is the 0-based frame index. ``category_id`` may be left out (1, person, is
  the only one used) and so may ``score`` (1).
* ``--box x,y,w,h``: one box, used on every image or frame;
* neither: **the whole image is one person box** (right for an image cropped around one
  person, wrong for a scene with several people: give boxes then).

A box reaching beyond its image is clipped to it. Entries for images not given, of another
category, with a non-positive width or height, or below ``--min-score`` are skipped and
counted in the summary line; a malformed entry is an error naming it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autopose.config import Config
from autopose.data.coco import detection_fields
from autopose.data.records import PersonRecord, SkipCounter, integer, text
from autopose.data.transforms import box_to_center_scale
from autopose.errors import UserError
from autopose.io import read_json

# Person boxes of one image: ([x, y, w, h], score) each.
Boxes = list[tuple[list[float], float]]


def parse_box(text: str) -> list[float]:
    """``"x,y,w,h"`` -> four finite floats with positive width and height.

    A box reaching beyond an image is clipped to it later (:func:`clip_box`), so
    ``0,0,1e9,1e9`` means the whole image of any size.
    """
    try:
        box = [float(v) for v in text.split(",")]
    except ValueError:
        box = []
    if len(box) != 4 or not all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise UserError(f"--box: expected x,y,w,h with positive w and h, got {text!r}")
    return box


def clip_box(box: list[float], width: int, height: int) -> list[float] | None:
    """``box`` clipped to the ``width`` x ``height`` image; None when nothing is left.

    HRNet and mmpose clip ground-truth boxes to the image before cropping; a box inside the
    image is returned unchanged (not shrunk by HRNet's one pixel), so given boxes keep their
    numbers in results.json. A huge box (1e30) would otherwise overflow OpenCV's drawing.
    """
    x1, y1 = max(0.0, box[0]), max(0.0, box[1])
    x2, y2 = min(float(width), box[0] + box[2]), min(float(height), box[1] + box[3])
    if x2 <= x1 or y2 <= y1:
        return None
    if [x1, y1, x2, y2] == [box[0], box[1], box[0] + box[2], box[1] + box[3]]:
        return list(box)
    return [x1, y1, x2 - x1, y2 - y1]


def read_boxes(det_file: Path, min_score: float, skips: SkipCounter,
               ids: Collection[int] | None, names: dict[str, int] | None
               ) -> dict[int, Boxes]:
    """Detections per image id from a COCO results file; UserError naming a malformed entry.

    ``ids``: the images given, or None for a video's frames (not counted before they are
    read: any frame index >= 0 is kept). ``names``: file name -> image id for entries that
    name their image by ``file_name``; None where images have no names (a video's frames).
    Entries for other images, of another category, with a non-positive width or height, or
    scored below ``min_score`` are left out and counted in ``skips``.
    """
    dets = read_json(det_file, "--boxes")
    if not isinstance(dets, list):
        raise UserError(f"{det_file}: --boxes: expected a list of detections")
    known = set(ids) if ids is not None else None
    out: dict[int, Boxes] = {}
    for n, d in enumerate(dets):
        where = f"{det_file}: detection #{n}"
        category, box, score = detection_fields(d, where, score_default=1.0)
        if "file_name" in d and names is not None:
            image_id = names.get(Path(text(d["file_name"], where, "file_name")).name)
        elif "image_id" in d:
            image_id = integer(d["image_id"], where, "image_id",
                               minimum=0 if known is None else None)
        elif names is None:
            raise UserError(f"{where}: needs image_id, the frame index (a video's frames "
                            "have no file names)")
        else:
            raise UserError(f"{where}: needs image_id or file_name")
        if image_id is None or (known is not None and image_id not in known):
            skips.skip("unknown image")
        elif category not in (None, 1):
            skips.skip("other category")
        elif box[2] <= 0 or box[3] <= 0:
            skips.skip("non-positive width or height")
        elif score < min_score:
            skips.skip("below --min-score")
        else:
            out.setdefault(image_id, []).append(([float(v) for v in box], score))
    return out


@dataclass
class BoxSource:
    """The person boxes of each image: from a detection file, one fixed box, or the image."""

    dets: dict[int, Boxes] | None  # per image id, from --boxes
    fixed: list[float] | None  # --box
    label: str  # for run.json: the file, the box, or "whole image"

    def boxes(self, image_id: int, width: int, height: int) -> Boxes:
        """The boxes given for the image (before clipping)."""
        if self.dets is not None:
            return self.dets.get(image_id, [])
        if self.fixed is not None:
            return [(self.fixed, 1.0)]
        return [([0.0, 0.0, float(width), float(height)], 1.0)]


def box_source(boxes: Path | None, box: str | None, min_score: float, skips: SkipCounter,
               ids: Collection[int] | None, names: dict[str, int] | None) -> BoxSource:
    """``--boxes`` or ``--box`` (not both), checked before any work."""
    if boxes is not None and box is not None:
        raise UserError("autopose infer: give --boxes or --box, not both")
    fixed = parse_box(box) if box is not None else None
    dets = read_boxes(Path(boxes), min_score, skips, ids, names) if boxes is not None else None
    label = str(boxes) if boxes is not None else (f"--box {box}" if box else "whole image")
    return BoxSource(dets, fixed, label)


def person_records(image: str, image_id: int, width: int, height: int, boxes: Boxes,
                   cfg: Config, num_joints: int, skips: SkipCounter) -> list[PersonRecord]:
    """One record per box of the ``width`` x ``height`` image, clipped to it and padded to
    the network's aspect ratio as ``autopose test`` pads its boxes (no joints: nothing to
    score); a box wholly outside the image is skipped and counted."""
    h_in, w_in = cfg.data.input_size
    k = num_joints
    records = []
    for given, score in boxes:
        b = clip_box(given, width, height)
        if b is None:
            skips.skip("box outside the image")
            continue
        center, scale = box_to_center_scale(b, w_in / h_in, cfg.data.bbox_padding)
        records.append(PersonRecord(image, image_id, center, scale,
                                    np.zeros((k, 2), np.float32), np.zeros(k, np.float32),
                                    box_score=score, bbox=np.asarray(b, np.float64)))
    return records
