"""``autopose infer --video``: a short video written from the real COCO sample images,
annotated frame by frame into a new video, with one COCO-format results file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from autopose.cli import main
from engine_fixtures import tiny_genotype, tiny_set, trained_checkpoint  # noqa: F401

SIZE = (320, 240)  # (width, height) of the test video
FRAMES = 6


@pytest.fixture(scope="module")
def video(mmpose_coco, tmp_path_factory) -> Path:
    """Six 320x240 frames at 5 frames/s: the four sample images, resized, then two again."""
    images = sorted(Path(mmpose_coco["images"]).glob("*.jpg"))
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, SIZE)
    assert writer.isOpened()
    for i in range(FRAMES):
        writer.write(cv2.resize(cv2.imread(str(images[i % len(images)])), SIZE))
    writer.release()
    return path


def _frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_video_is_annotated_frame_by_frame(trained_checkpoint, video, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    # The video is written through a temporary that keeps the .mp4 suffix (OpenCV picks the
    # container by it); what a killed run left is removed.
    stale = out / ".clip.mp4.k1ll3d.tmp.mp4"
    stale.write_bytes(b"\0" * 100)
    assert main(["infer", "--checkpoint", str(trained_checkpoint), "--video", str(video),
                 "--out", str(out), "--threads", "1", "--batch", "4",
                 "--kpt-thresh", "0"]) == 0
    assert "6 frame(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4", "results.json", "run.json"]
    drawn, given = _frames(out / "clip.mp4"), _frames(video)
    assert len(drawn) == FRAMES and all(f.shape == (SIZE[1], SIZE[0], 3) for f in drawn)
    # Something drawn on every frame, over the frame (not a new picture).
    for a, b in zip(drawn, given):
        changed = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 60
        assert 0 < changed.mean() < 0.5
    results = json.loads((out / "results.json").read_text())
    # No boxes: each whole frame is one person.
    assert [r["image_id"] for r in results] == list(range(FRAMES))
    assert all(r["bbox"] == [0.0, 0.0, float(SIZE[0]), float(SIZE[1])] for r in results)
    assert all(len(r["keypoints"]) == 51 and r["category_id"] == 1 for r in results)
    run = json.loads((out / "run.json").read_text())
    assert run["video"]["frames"] == FRAMES and run["video"]["fps"] == pytest.approx(5)
    assert (run["video"]["width"], run["video"]["height"]) == SIZE
    assert run["backend"] == "torch" and run["threads"] == 1 and run["batch"] == 4
    assert run["timing"]["frames"] == FRAMES and run["timing"]["ms_per_person"] > 0
    assert cv2.VideoCapture(str(out / "clip.mp4")).get(cv2.CAP_PROP_FPS) == pytest.approx(5)


def test_video_boxes_by_frame_index(trained_checkpoint, video, tmp_path, capsys):
    dets = [{"image_id": 0, "category_id": 1, "bbox": [10, 20, 100, 150], "score": 0.9},
            {"image_id": 0, "category_id": 1, "bbox": [200, 40, 90, 180], "score": 0.8},
            {"image_id": 3, "bbox": [50, 50, 120, 160]},  # category and score left out
            {"image_id": 4, "category_id": 2, "bbox": [5, 5, 50, 50], "score": 0.9},
            {"image_id": 40, "category_id": 1, "bbox": [5, 5, 50, 50], "score": 0.9}]
    det = tmp_path / "det.json"
    det.write_text(json.dumps(dets))
    out = tmp_path / "out"
    assert main(["infer", "--checkpoint", str(trained_checkpoint), "--video", str(video),
                 "--boxes", str(det), "--out", str(out), "--backend", "onnxruntime",
                 "--threads", "1"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines()
                if ln.startswith("autopose infer:"))
    assert "1 frame past the video's end" in line and "1 other category" in line
    results = json.loads((out / "results.json").read_text())
    assert sorted({r["image_id"] for r in results}) == [0, 3]
    assert {tuple(r["bbox"]) for r in results} <= {(10, 20, 100, 150), (200, 40, 90, 180),
                                                   (50, 50, 120, 160)}
    assert len(_frames(out / "clip.mp4")) == FRAMES
    assert json.loads((out / "run.json").read_text())["backend"] == "onnxruntime"


def test_a_run_stopped_midway_leaves_no_half_video(trained_checkpoint, video, tmp_path,
                                                   monkeypatch):
    import autopose.engine.infer_video as infer_video

    real = infer_video.estimate_poses
    calls = []

    def stop_at_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # two frames predicted and written by then
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(infer_video, "estimate_poses", stop_at_the_third)
    out = tmp_path / "out"
    assert main(["infer", "--checkpoint", str(trained_checkpoint), "--video", str(video),
                 "--out", str(out), "--batch", "1"]) == 130
    assert len(calls) == 3 and list(out.iterdir()) == []
