"""``autopose infer --video``: poses on every frame of a video, drawn into a new video and
written as one COCO-format results file.

Frames are read with OpenCV (``cv2.VideoCapture``), their person boxes cropped and predicted
as ``autopose infer`` does on images (:func:`autopose.engine.infer.estimate_poses`, the crops
of several frames batched together), and each frame is drawn and written to ``NAME.mp4``
(``cv2.VideoWriter``, codec mp4v, the input's frame rate and size) in the output folder.
``results.json`` holds every frame's poses with ``image_id`` the frame index (from 0), which
is also how ``--boxes`` entries name their frame. Boxes for frames past the video's end are
counted in the summary line. The video is written through a temporary file: a run stopped
midway leaves no half video.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from autopose.config import DataConfig
from autopose.data.keypoints import KeypointInfo
from autopose.data.records import PersonRecord, SkipCounter
from autopose.data.topdown import TopDownDataset
from autopose.engine.infer import Poses, estimate_poses, predictor_record, timing
from autopose.engine.infer_backend import NetworkOptions, Predictor, load_predictor
from autopose.engine.infer_boxes import BoxSource, box_source, person_records
from autopose.errors import UserError
from autopose.io import atomic_write, check_run_folder, default_run_dir, run_record, write_json
from autopose.viz.poses import draw_poses

# Frames held in memory at once, at most: the crops of several frames make a batch, but a
# 4K frame is 25 MB.
MAX_FRAMES_IN_MEMORY = 32
FALLBACK_FPS = 25.0  # a container that does not say its frame rate


class FrameCrops(TopDownDataset):
    """Crops from frames in memory (frame index -> uint8 BGR ``(H, W, 3)``), not files."""

    def __init__(self, records: list[PersonRecord], info: KeypointInfo, data: DataConfig,
                 frames: dict[int, np.ndarray]):
        super().__init__(records, info, data, train=False)
        self.frames = frames

    def load_image(self, rec: PersonRecord) -> np.ndarray:
        return self.frames[rec.image_id]


@dataclass
class VideoInfo:
    """The video: its frame size (the first frame's), frame rate, and the frame count the
    container states (0 when it does not; only for the progress bar)."""

    path: Path
    width: int
    height: int
    fps: float
    frames: int
    first: np.ndarray  # the first frame, BGR (H, W, 3): decoded to check the video


def open_video(path: Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    """The video, opened and its first frame decoded; UserError naming it otherwise."""
    if not path.is_file():
        raise UserError(f"{path}: --video: no such file")
    cap = cv2.VideoCapture(str(path))
    ok, first = cap.read() if cap.isOpened() else (False, None)
    if not ok or first is None:
        cap.release()
        raise UserError(f"{path}: --video: OpenCV cannot read a frame of it (not a video, "
                        "or damaged)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if math.isfinite(fps) and fps > 0 else FALLBACK_FPS
    frames = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
    return cap, VideoInfo(path, first.shape[1], first.shape[0], fps, frames, first)


def read_frames(cap: cv2.VideoCapture, video: VideoInfo) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, BGR frame)`` from the first frame until the stream ends; a frame of another
    size than the first is a UserError (the video written has one size)."""
    frame, index = video.first, 0
    while True:
        if frame.shape[:2] != (video.height, video.width):
            raise UserError(f"{video.path}: --video: frame {index} is "
                            f"{frame.shape[1]}x{frame.shape[0]}, the first "
                            f"{video.width}x{video.height}")
        yield index, frame
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        index += 1


@dataclass
class VideoRun:
    """What the frames gave: the poses, and the counts and time for run.json."""

    results: list[dict[str, Any]]
    frames: int = 0
    crops: int = 0
    predict_s: float = 0.0


def annotate(tmp: Path, cap: cv2.VideoCapture, video: VideoInfo, predictor: Predictor,
             source: BoxSource, skips: SkipCounter, kpt_thresh: float,
             progress: bool = True) -> VideoRun:
    """Predict every frame's poses and write the frames, drawn, to ``tmp`` (an .mp4 name)."""
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), video.fps,
                             (video.width, video.height))
    if not writer.isOpened():
        raise UserError(f"{tmp.parent}: --out: OpenCV cannot write an mp4v video there")
    run = VideoRun([])
    frames: dict[int, np.ndarray] = {}
    records: list[PersonRecord] = []
    bar = tqdm(total=video.frames or None, desc="infer", unit="frame", disable=not progress)

    def flush() -> None:
        """Predict the frames held, draw them and write them in order."""
        cfg = predictor.cfg
        poses: Poses = estimate_poses(FrameCrops(records, predictor.info, cfg.data, frames),
                                      predictor, progress=False)
        run.results.extend(poses.results)
        run.crops += poses.crops
        run.predict_s += poses.seconds
        for index in sorted(frames):
            writer.write(draw_poses(frames[index], poses.people.get(index, []),
                                    predictor.info, kpt_thresh))
        bar.update(len(frames))
        frames.clear()
        records.clear()

    try:
        for index, frame in read_frames(cap, video):
            frames[index] = frame
            records.extend(person_records(
                f"{video.path}#{index}", index, video.width, video.height,
                source.boxes(index, video.width, video.height), predictor.cfg,
                predictor.info.num_joints, skips))
            run.frames = index + 1
            # Enough crops for a full batch, or as many frames as memory should hold.
            if len(records) >= predictor.cfg.test.batch_size or \
                    len(frames) >= MAX_FRAMES_IN_MEMORY:
                flush()
        flush()
    finally:
        bar.close()
        writer.release()
    if tmp.stat().st_size == 0:
        raise UserError(f"{tmp.parent}: --out: OpenCV wrote an empty video")
    return run


def run_video_command(checkpoint: Path, video: Path, boxes: Path | None, box: str | None,
                      out: Path | None, min_score: float = 0.0, kpt_thresh: float = 0.2,
                      overrides: list[str] | None = None, backend: str | None = None,
                      threads: int | str | None = None, batch: int | str | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """``autopose infer --video``; returns ``{"results", "video", "frames", "out",
    "skipped", "timing"}``."""
    options = NetworkOptions.parse(checkpoint, backend, threads, batch)
    video = Path(video)
    out = Path(out) if out else default_run_dir("infer")
    drawn = out / f"{video.stem}.mp4"
    check_run_folder(out, "infer", writes=(drawn.name, "results.json"))
    cap, info = open_video(video)
    try:
        skips = SkipCounter(str(boxes) if boxes is not None else "--box")
        # A video's frames have no names, and are not counted before they are read.
        source = box_source(boxes, box, min_score, skips, ids=None, names=None)
        # No data workers: the frames are in memory, and workers would fork for every
        # batch of frames.
        predictor = load_predictor(checkpoint, options, list(overrides or []) + ["data.workers=0"])
        start = time.perf_counter()
        runs: list[VideoRun] = []
        atomic_write(drawn, lambda tmp: runs.append(annotate(
            tmp, cap, info, predictor, source, skips, kpt_thresh, progress)), keep_suffix=True)
        run = runs[0]
    finally:
        cap.release()
    for index, found in (source.dets or {}).items():
        if index >= run.frames:
            for _ in found:
                skips.skip("frame past the video's end")
    write_json(out / "results.json", run.results, indent=None)
    times = timing("frame", run.frames, run.crops, run.predict_s, predictor.network_s,
                   time.perf_counter() - start)
    times["fps"] = round(run.frames / times["wall_s"], 3) if times["wall_s"] else None
    record = {"path": str(video), "frames": run.frames, "fps": info.fps,
              "width": info.width, "height": info.height, "annotated": drawn.name}
    write_json(out / "run.json", run_record(predictor.cfg.seed) | {
        "command": "infer"} | predictor_record(predictor) | {
        "video": record, "boxes": source.label, "kpt_thresh": kpt_thresh,
        "min_score": min_score, "timing": times})
    print(f"autopose infer: {video.name}: {run.frames} frame(s), {len(run.results)} "
          f"person(s) -> {drawn} and {out / 'results.json'}; {predictor.backend}, "
          f"{predictor.threads} thread(s): {times['fps']} frames/s; skipped: "
          f"{skips.summary()}")
    return {"results": run.results, "video": str(drawn), "frames": run.frames,
            "out": str(out), "skipped": dict(skips.counts), "timing": times}
