"""``autopose infer``: poses on your own images, drawn and written as COCO-format results
(a video: :mod:`autopose.engine.infer_video`).

Each person box (:mod:`autopose.engine.infer_boxes`: a detector's boxes, one given box, or
the whole image) is cropped, predicted (with flip test when the model's config says so),
decoded and mapped back exactly as ``autopose test`` does it: the same
:class:`~autopose.data.topdown.TopDownDataset` crops and the same
:func:`~autopose.evaluation.pipeline.predict`, the crops ``--batch`` at a time. The network
runs in PyTorch or ONNX Runtime (:mod:`autopose.engine.infer_backend`).

An image's id is the number in its file name when every name is a number (COCO's
``000000000785.jpg`` is 785), otherwise its 1-based position in name order; ``images.json``
in the output folder lists them. Output: one PNG per image (``<name>.png``) with each
person's box, skeleton and keypoint scores drawn, ``results.json``, and ``run.json``
(backend, threads, batch, and the time per image and per person).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from autopose.data.codec import instance_scores
from autopose.data.records import ImageChecker, PersonRecord, SkipCounter, read_image
from autopose.data.topdown import TopDownDataset
from autopose.engine.infer_backend import NetworkOptions, Predictor, load_predictor
from autopose.engine.infer_boxes import box_source, person_records
from autopose.errors import UserError
from autopose.evaluation.nms import oks_nms
from autopose.evaluation.pipeline import EvalSet, predict
from autopose.io import atomic_write, check_run_folder, default_run_dir, run_record, write_json
from autopose.viz.poses import draw_poses

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


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


@dataclass
class Poses:
    """The poses of a set of person records."""

    results: list[dict[str, Any]]  # COCO keypoint results, after OKS-NMS per image
    people: dict[int, list[dict[str, Any]]]  # per image id, for draw_poses
    crops: int  # person crops predicted (before OKS-NMS)
    seconds: float  # cropping, network and decoding


def estimate_poses(dataset: TopDownDataset, predictor: Predictor,
                   progress: bool = True) -> Poses:
    """Predict every record of ``dataset`` (``predictor.cfg.test.batch_size`` crops a
    network call), rescore as ``autopose test`` does, and keep each image's poses that
    OKS-NMS keeps. ``dataset`` holds one image's records next to each other or not; its
    order is the results' order within an image."""
    start = time.perf_counter()
    cfg = predictor.cfg
    if not dataset.records:
        return Poses([], {}, 0, 0.0)
    # Only predicted, never scored: no annotation file.
    eval_set = EvalSet(dataset, predictor.info, Path(""), cfg.data.format)
    preds = predict(eval_set, predictor.heatmaps, cfg, progress=progress)
    scores = instance_scores(preds.maxvals, preds.box_scores, cfg.test.in_vis_thre)
    kpts = np.concatenate([preds.coords, preds.maxvals[..., None]], axis=-1)  # (N, K, 3)
    areas = np.prod(preds.scales * 200.0, axis=1)
    results: list[dict[str, Any]] = []
    people: dict[int, list[dict[str, Any]]] = {}
    for image_id in np.unique(preds.image_ids):
        idx = np.nonzero(preds.image_ids == image_id)[0]
        keep = oks_nms(kpts[idx], scores[idx], areas[idx], cfg.test.oks_thre,
                       predictor.info.sigmas_array)
        for j in idx[keep]:
            # preds.indices: the record's index (the loader does not shuffle, but say so).
            rec = dataset.records[int(preds.indices[j])]
            bbox = [round(float(v), 2) for v in rec.bbox]
            results.append({"image_id": int(image_id), "category_id": 1,
                            "keypoints": [round(float(v), 3) for v in kpts[j].reshape(-1)],
                            "score": float(scores[j]), "bbox": bbox})
            people.setdefault(int(image_id), []).append(
                {"keypoints": kpts[j], "bbox": bbox, "score": float(scores[j])})
    return Poses(results, people, len(preds.image_ids), time.perf_counter() - start)


def timing(unit: str, count: int, crops: int, predict_s: float, network_s: float,
           wall_s: float) -> dict[str, Any]:
    """run.json's ``timing``: per ``unit`` (image or frame) and per person crop, in ms.

    ``predict_s``: cropping, network and decoding; ``network_s``: the network alone (both
    flips); ``wall_s``: the whole run after the model was loaded (reading, drawing and
    writing too). Crops are batched across images, so the per-image figures are means.
    """
    def ms(seconds: float, n: int) -> float | None:
        return round(1000.0 * seconds / n, 3) if n else None

    return {f"{unit}s": count, "persons": crops, "wall_s": round(wall_s, 3),
            "predict_s": round(predict_s, 3), "network_s": round(network_s, 3),
            f"ms_per_{unit}": ms(predict_s, count), "ms_per_person": ms(predict_s, crops),
            "network_ms_per_person": ms(network_s, crops)}


def predictor_record(predictor: Predictor) -> dict[str, Any]:
    """run.json's fields on the network run: model file, backend, threads, batch (and the
    export check of a checkpoint exported in memory)."""
    out = {"checkpoint": predictor.model, "backend": predictor.backend,
           "threads": predictor.threads, "batch": predictor.cfg.test.batch_size}
    if predictor.export_diff is not None:
        out["exported_in_memory_max_abs_diff"] = predictor.export_diff
    return out


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise UserError(f"{path}: could not encode the PNG")
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.tobytes()))


def run_infer_command(checkpoint: Path, image: Path, boxes: Path | None, box: str | None,
                      out: Path | None, min_score: float = 0.0, kpt_thresh: float = 0.2,
                      overrides: list[str] | None = None, backend: str | None = None,
                      threads: int | str | None = None, batch: int | str | None = None
                      ) -> dict[str, Any]:
    """``autopose infer --image``; returns ``{"results": [...], "images": [...], "pngs": [...],
    "out", "skipped", "timing"}``."""
    options = NetworkOptions.parse(checkpoint, backend, threads, batch)
    paths = list_images(Path(image))
    ids = assign_ids(paths)
    out = Path(out) if out else default_run_dir("infer")
    # Before any work: a folder of its own, where no file it writes exists yet (--out the
    # --image folder would otherwise overwrite PNG inputs with their drawings).
    check_run_folder(out, "infer", writes=tuple(f"{p.stem}.png" for p in paths)
                     + ("results.json", "images.json"))
    skips = SkipCounter(str(boxes) if boxes is not None else "--box")
    source = box_source(boxes, box, min_score, skips, ids, {p.name: i for p, i in zip(paths, ids)})
    predictor = load_predictor(checkpoint, options, overrides)
    cfg = predictor.cfg
    start = time.perf_counter()
    checker = ImageChecker(cfg.data.corrupt_images)
    records: list[PersonRecord] = []
    images_meta = []
    for path, image_id in zip(paths, ids):
        if not checker.usable(path, image_id, "--image"):
            skips.skip("damaged image")
            continue
        img = read_image(str(path), image_id)
        ih, iw = img.shape[:2]
        images_meta.append({"id": image_id, "file_name": path.name, "width": iw, "height": ih})
        records += person_records(str(path), image_id, iw, ih, source.boxes(image_id, iw, ih),
                                  cfg, predictor.info.num_joints, skips)

    poses = estimate_poses(TopDownDataset(records, predictor.info, cfg.data, train=False,
                                          seed=cfg.seed), predictor)
    out.mkdir(parents=True, exist_ok=True)
    pngs = []
    for path, image_id in zip(paths, ids):
        if not checker.usable(path, image_id, "--image"):
            continue
        drawn = draw_poses(read_image(str(path), image_id), poses.people.get(image_id, []),
                           predictor.info, kpt_thresh)
        png = out / f"{path.stem}.png"
        _write_png(png, drawn)
        pngs.append(str(png))
    write_json(out / "results.json", poses.results, indent=None)
    write_json(out / "images.json", images_meta)
    times = timing("image", len(images_meta), poses.crops, poses.seconds, predictor.network_s,
                   time.perf_counter() - start)
    write_json(out / "run.json", run_record(cfg.seed) | {
        "command": "infer"} | predictor_record(predictor) | {
        "boxes": source.label, "kpt_thresh": kpt_thresh, "min_score": min_score,
        "timing": times})
    print(f"autopose infer: {len(paths)} image(s), {len(poses.results)} person(s) -> {out} "
          f"(PNGs, results.json); {predictor.backend}, {predictor.threads} thread(s): "
          f"{times['ms_per_image']} ms an image, {times['ms_per_person']} ms a person box "
          f"({times['persons']} boxes before OKS-NMS); "
          f"skipped: {skips.summary()}")
    return {"results": poses.results, "images": images_meta, "pngs": pngs, "out": str(out),
            "skipped": dict(skips.counts), "timing": times}
