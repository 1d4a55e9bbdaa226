"""``autopose infer``: poses on your own images, drawn and written as COCO-format results.

Each person box is cropped, predicted (with flip test when the checkpoint's config says so),
decoded and mapped back exactly as ``autopose test`` does it: the same
:class:`~autopose.data.topdown.TopDownDataset` crops and the same
:func:`~autopose.evaluation.pipeline.predict`. Boxes come from, in this order:

* ``--boxes DET.json``: person detections in the COCO results format
  (``[{"image_id": 785, "bbox": [x, y, w, h], "score": 0.98}, ...]``; an entry may name its
  image by ``"file_name"`` instead of ``"image_id"``);
* ``--box x,y,w,h``: one box, used on every image;
* neither: **the whole image is one person box** (right for an image cropped around one
  person, wrong for a scene with several people: give boxes then).

A box reaching beyond its image is clipped to it. ``--boxes`` entries for images not given,
of another category, with a non-positive width or height, or below ``--min-score`` are
skipped and counted in the summary line; a malformed entry is an error naming it.

An image's id is the number in its file name when every name is a number (COCO's
``000000000785.jpg`` is 785), otherwise its 1-based position in name order; ``images.json``
in the output folder lists them. Output: one PNG per image (``<name>.png``) with each
person's box, skeleton and keypoint scores drawn, and ``results.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from autopose.data.codec import instance_scores
from autopose.data.keypoints import KeypointInfo
from autopose.data.coco import detection_fields
from autopose.data.records import (ImageChecker, PersonRecord, SkipCounter, integer, read_image,
                                   text)
from autopose.data.topdown import TopDownDataset
from autopose.data.transforms import box_to_center_scale
from autopose.errors import UserError
from autopose.evaluation.nms import oks_nms
from autopose.evaluation.pipeline import EvalSet, network_heatmaps, predict
from autopose.engine.checkpoint import checkpoint_config, keypoints_from_dict, load_model
from autopose.io import (atomic_write, check_run_folder, default_run_dir, read_json, run_record,
                         write_json)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# BGR colours: the person's left side orange, right side blue, the middle green.
LEFT, RIGHT, MIDDLE = (0, 140, 255), (255, 120, 0), (60, 200, 60)
BOX = (0, 215, 255)


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float,
          colour: tuple[int, int, int]) -> None:
    """Text with a black outline, readable on light and dark backgrounds alike."""
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def list_images(path: Path) -> list[Path]:
    """``path`` itself, or the images in the folder ``path`` (by name)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not found:
            raise UserError(f"{path}: --image: no image files ({', '.join(IMAGE_EXTS)}) in "
                            "the folder")
        return found
    raise UserError(f"{path}: --image: no such file or folder")


def assign_ids(paths: list[Path]) -> list[int]:
    """Image ids: the file names' numbers when all are distinct numbers, else 1..N."""
    stems = [p.stem for p in paths]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(paths) + 1))


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


def read_boxes(det_file: Path, ids: list[int], paths: list[Path], min_score: float,
               skips: SkipCounter | None = None) -> dict[int, list[tuple[list[float], float]]]:
    """Detections per image id from a COCO results file; UserError naming a malformed entry.

    Entries for images not among ``paths``, of another category, with a non-positive width
    or height, or scored below ``min_score`` are left out and counted in ``skips``.
    """
    dets = read_json(det_file, "--boxes")
    if not isinstance(dets, list):
        raise UserError(f"{det_file}: --boxes: expected a list of detections")
    skips = skips if skips is not None else SkipCounter(str(det_file))
    by_name = {p.name: i for p, i in zip(paths, ids)}
    known = set(ids)
    out: dict[int, list[tuple[list[float], float]]] = {}
    for n, d in enumerate(dets):
        where = f"{det_file}: detection #{n}"
        category, box, score = detection_fields(d, where, score_default=1.0)
        if "file_name" in d:
            image_id = by_name.get(Path(text(d["file_name"], where, "file_name")).name)
        elif "image_id" in d:
            image_id = integer(d["image_id"], where, "image_id")
        else:
            raise UserError(f"{where}: needs image_id or file_name")
        if image_id not in known:
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


def draw_poses(image: np.ndarray, people: list[dict[str, Any]], info: KeypointInfo,
               kpt_thresh: float) -> np.ndarray:
    """A copy of ``image`` (BGR ``(H, W, 3)``) with boxes, skeletons and keypoint scores.

    ``people``: ``{"keypoints": (K, 3) x, y, score, "bbox": [x, y, w, h], "score": float}``;
    joints with a score below ``kpt_thresh`` are not drawn.
    """
    out = image.copy()
    h, w = out.shape[:2]
    size = max(h, w)
    thick = max(1, round(size / 320))
    radius = max(2, round(size / 160))
    font = max(0.3, size / 1600)

    def colour(j: int) -> tuple[int, int, int]:
        name = info.names[j]
        return LEFT if name.startswith("left") else RIGHT if name.startswith("right") else MIDDLE

    for person in people:
        kpts = person["keypoints"]
        x, y, bw, bh = person["bbox"]
        cv2.rectangle(out, (int(round(x)), int(round(y))), (int(round(x + bw)), int(round(y + bh))),
                      BOX, thick)
        _text(out, f"{person['score']:.2f}", (int(x) + 3, int(y) + int(16 * font / 0.4)), font,
              BOX)
        for a, b in info.skeleton:
            if kpts[a, 2] >= kpt_thresh and kpts[b, 2] >= kpt_thresh:
                pa = (int(round(kpts[a, 0])), int(round(kpts[a, 1])))
                pb = (int(round(kpts[b, 0])), int(round(kpts[b, 1])))
                both = colour(a) if colour(a) == colour(b) else MIDDLE
                cv2.line(out, pa, pb, both, thick + 1, cv2.LINE_AA)
        for j in range(kpts.shape[0]):
            if kpts[j, 2] < kpt_thresh:
                continue
            p = (int(round(kpts[j, 0])), int(round(kpts[j, 1])))
            cv2.circle(out, p, radius, colour(j), -1, cv2.LINE_AA)
            cv2.circle(out, p, radius, (0, 0, 0), 1, cv2.LINE_AA)
            _text(out, f"{kpts[j, 2]:.2f}", (p[0] + radius + 1, p[1] - radius), font,
                  (255, 255, 255))
    return out


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise UserError(f"{path}: could not encode the PNG")
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.tobytes()))


def run_infer_command(checkpoint: Path, image: Path, boxes: Path | None, box: str | None,
                      out: Path | None, min_score: float = 0.0, kpt_thresh: float = 0.2,
                      overrides: list[str] | None = None) -> dict[str, Any]:
    """``autopose infer``; returns ``{"results": [...], "images": [...], "pngs": [...]}``."""
    if boxes is not None and box is not None:
        raise UserError("autopose infer: give --boxes or --box, not both")
    fixed_box = parse_box(box) if box is not None else None
    paths = list_images(Path(image))
    ids = assign_ids(paths)
    out = Path(out) if out else default_run_dir("infer")
    # Before any work: a folder of its own, where no file it writes exists yet (--out the
    # --image folder would otherwise overwrite PNG inputs with their drawings).
    check_run_folder(out, "infer", writes=tuple(f"{p.stem}.png" for p in paths)
                     + ("results.json", "images.json"))
    model, ckpt = load_model(checkpoint)
    cfg = checkpoint_config(ckpt, checkpoint, overrides)
    info = keypoints_from_dict(ckpt["keypoints"], str(checkpoint))
    device = next(model.parameters()).device
    skips = SkipCounter(str(boxes) if boxes is not None else "--box")
    dets = read_boxes(Path(boxes), ids, paths, min_score, skips) if boxes is not None else None
    checker = ImageChecker(cfg.data.corrupt_images)

    h_in, w_in = cfg.data.input_size
    k = info.num_joints
    records: list[PersonRecord] = []
    images_meta = []
    for path, image_id in zip(paths, ids):
        if not checker.usable(path, image_id, "--image"):
            skips.skip("damaged image")
            continue
        img = read_image(str(path), image_id)
        ih, iw = img.shape[:2]
        images_meta.append({"id": image_id, "file_name": path.name, "width": iw, "height": ih})
        if dets is not None:
            person_boxes = dets.get(image_id, [])
        elif fixed_box is not None:
            person_boxes = [(fixed_box, 1.0)]
        else:
            person_boxes = [([0.0, 0.0, float(iw), float(ih)], 1.0)]
        for given, score in person_boxes:
            b = clip_box(given, iw, ih)
            if b is None:
                skips.skip("box outside the image")
                continue
            center, scale = box_to_center_scale(b, w_in / h_in, cfg.data.bbox_padding)
            records.append(PersonRecord(str(path), image_id, center, scale,
                                        np.zeros((k, 2), np.float32), np.zeros(k, np.float32),
                                        box_score=score, bbox=np.asarray(b, np.float64)))

    results: list[dict[str, Any]] = []
    people_by_image: dict[int, list[dict[str, Any]]] = {}
    if records:
        ds = TopDownDataset(records, info, cfg.data, train=False, seed=cfg.seed)
        # Only predicted, never scored: no annotation file.
        eval_set = EvalSet(ds, info, Path(""), cfg.data.format)
        preds = predict(eval_set, network_heatmaps(model, device), cfg)
        scores = instance_scores(preds.maxvals, preds.box_scores, cfg.test.in_vis_thre)
        kpts = np.concatenate([preds.coords, preds.maxvals[..., None]], axis=-1)
        areas = np.prod(preds.scales * 200.0, axis=1)
        # Records and predictions are in the same order (the loader does not shuffle).
        for image_id in np.unique(preds.image_ids):
            idx = np.nonzero(preds.image_ids == image_id)[0]
            keep = oks_nms(kpts[idx], scores[idx], areas[idx], cfg.test.oks_thre,
                           info.sigmas_array)
            for j in idx[keep]:
                bbox = [round(float(v), 2) for v in records[j].bbox]
                results.append({"image_id": int(image_id), "category_id": 1,
                                "keypoints": [round(float(v), 3) for v in kpts[j].reshape(-1)],
                                "score": float(scores[j]), "bbox": bbox})
                people_by_image.setdefault(int(image_id), []).append(
                    {"keypoints": kpts[j], "bbox": bbox, "score": float(scores[j])})

    out.mkdir(parents=True, exist_ok=True)
    pngs = []
    for path, image_id in zip(paths, ids):
        if not checker.usable(path, image_id, "--image"):
            continue
        drawn = draw_poses(read_image(str(path), image_id), people_by_image.get(image_id, []),
                           info, kpt_thresh)
        png = out / f"{path.stem}.png"
        _write_png(png, drawn)
        pngs.append(str(png))
    write_json(out / "results.json", results, indent=None)
    write_json(out / "images.json", images_meta)
    write_json(out / "run.json", run_record(cfg.seed) | {
        "command": "infer", "checkpoint": str(checkpoint),
        "boxes": str(boxes) if boxes else (f"--box {box}" if box else "whole image"),
        "kpt_thresh": kpt_thresh, "min_score": min_score})
    print(f"autopose infer: {len(paths)} image(s), {len(results)} person(s) -> {out} "
          f"(PNGs, results.json); skipped: {skips.summary()}")
    return {"results": results, "images": images_meta, "pngs": pngs, "out": str(out),
            "skipped": dict(skips.counts)}
