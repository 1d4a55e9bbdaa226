"""``autopose infer``: skeletons drawn on real COCO images, and COCO-format results."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from autopose.cli import main
from autopose.engine.infer import assign_ids, run_infer_command
from autopose.engine.infer_boxes import parse_box
from autopose.errors import UserError
from engine_fixtures import (one_thread, tiny_checkpoint, tiny_genotype, tiny_set,  # noqa: F401
                             trained_checkpoint)


def _joints_inside(result: dict, shape: tuple[int, ...], thresh: float) -> list[tuple[int, int]]:
    k = np.asarray(result["keypoints"]).reshape(-1, 3)
    h, w = shape[:2]
    return [(int(round(x)), int(round(y))) for x, y, s in k
            if s >= thresh and 0 <= round(x) < w and 0 <= round(y) < h]


def _person_box(ann_file: str) -> tuple[Path, list[float]]:
    """An image of the set with exactly one person, and that person's box."""
    doc = json.loads(Path(ann_file).read_text())
    people: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        people.setdefault(a["image_id"], []).append(a)
    image_id = min(i for i, anns in people.items()
                   if len(anns) == 1 and anns[0]["num_keypoints"] >= 10)
    name = next(im["file_name"] for im in doc["images"] if im["id"] == image_id)
    return Path(name), people[image_id][0]["bbox"]


def test_infer_draws_the_skeleton_at_the_predicted_joints(trained_checkpoint, coco_mini, tmp_path,
                                                          one_thread):
    tiny_checkpoint = trained_checkpoint  # joints apart (see the fixture)
    name, box = _person_box(coco_mini["ann"])
    image = Path(coco_mini["images"]) / name
    out = tmp_path / "out"
    # --kpt-thresh 0: every joint with a positive score is drawn, however unsure a one-epoch
    # model is.
    assert main(["infer", "--checkpoint", str(tiny_checkpoint), "--image", str(image),
                 "--box", ",".join(str(v) for v in box), "--out", str(out),
                 "--kpt-thresh", "0"]) == 0
    png = out / f"{image.stem}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = cv2.imread(str(png))
    orig = cv2.imread(str(image))
    assert drawn.shape == orig.shape
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 1
    r = results[0]
    assert r["image_id"] == int(image.stem) and r["category_id"] == 1
    assert len(r["keypoints"]) == 51 and r["score"] >= 0
    # Scores in the json are rounded to 3 decimals; >= 0.001 there is > 0 in the drawing.
    joints = set(_joints_inside(r, orig.shape, 0.001))
    assert len(joints) >= 3
    changed = np.any(drawn != orig, axis=2)
    for x, y in joints:
        assert changed[y, x], f"nothing drawn at the predicted joint ({x}, {y})"
    assert changed.mean() < 0.3  # a drawing over the image, not a new image

    # With a threshold no joint reaches, no joint is drawn: the same check now fails.
    out2 = tmp_path / "none"
    run_infer_command(tiny_checkpoint, image, None, ",".join(str(v) for v in box), out2,
                      kpt_thresh=2.0)
    bare = cv2.imread(str(out2 / f"{image.stem}.png"))
    unchanged = [(x, y) for x, y in joints if not np.any(bare[y, x] != orig[y, x])]
    assert len(unchanged) >= len(joints) // 2


def test_infer_without_boxes_takes_the_whole_image(tiny_checkpoint, mmpose_coco, tmp_path,
                                                   one_thread):
    image = Path(mmpose_coco["images"]) / "000000000785.jpg"
    res = run_infer_command(tiny_checkpoint, image, None, None, tmp_path / "o")
    h, w = cv2.imread(str(image)).shape[:2]
    assert len(res["results"]) == 1 and res["results"][0]["image_id"] == 785
    assert res["results"][0]["bbox"] == [0.0, 0.0, float(w), float(h)]
    assert Path(res["pngs"][0]).name == "000000000785.png"


def test_infer_with_a_detection_file_on_a_folder(tiny_checkpoint, mmpose_coco, tmp_path,
                                                 one_thread):
    out = tmp_path / "out"
    res = run_infer_command(tiny_checkpoint, Path(mmpose_coco["images"]),
                            Path(mmpose_coco["det"]), None, out, min_score=0.5)
    dets = json.loads(Path(mmpose_coco["det"]).read_text())
    kept = [d for d in dets if d["score"] >= 0.5]
    assert {m["id"] for m in res["images"]} == {785, 40083, 196141, 197388}
    assert sorted(p.name for p in out.glob("*.png")) == sorted(
        f"{i:012d}.png" for i in (785, 40083, 196141, 197388))
    results = json.loads((out / "results.json").read_text())
    # OKS-NMS may merge boxes on one person; every pose comes from a kept detection.
    assert 0 < len(results) <= len(kept)
    boxes = {(d["image_id"], tuple(round(v, 2) for v in d["bbox"])) for d in kept}
    assert all((r["image_id"], tuple(r["bbox"])) in boxes for r in results)
    assert json.loads((out / "images.json").read_text())[0]["file_name"].endswith(".jpg")


def test_infer_with_one_box(tiny_checkpoint, coco_mini, tmp_path, one_thread):
    image = sorted(Path(coco_mini["images"]).glob("*.jpg"))[0]
    res = run_infer_command(tiny_checkpoint, image, None, "10,20,100,200", tmp_path / "o")
    assert [r["bbox"] for r in res["results"]] == [[10.0, 20.0, 100.0, 200.0]]
    # The crop covers the box padded by 1.25: the joints land around it, not anywhere.
    k = np.asarray(res["results"][0]["keypoints"]).reshape(-1, 3)
    assert np.all(k[:, 0] > 10 - 0.2 * 250) and np.all(k[:, 0] < 110 + 0.2 * 250)
    assert np.all(k[:, 1] > 20 - 0.2 * 250) and np.all(k[:, 1] < 220 + 0.2 * 250)


def test_infer_inputs_are_checked(tiny_checkpoint, tmp_path, capsys):
    assert assign_ids([Path("000000000785.jpg"), Path("12.png")]) == [785, 12]
    assert assign_ids([Path("b.jpg"), Path("a.jpg")]) == [1, 2]
    assert parse_box("1,2,3.5,4") == [1.0, 2.0, 3.5, 4.0]
    for bad in ("1,2,3", "1,2,0,4", "a,b,c,d"):
        with pytest.raises(UserError, match="--box"):
            parse_box(bad)
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.full((60, 40, 3), 90, np.uint8))
    det = tmp_path / "det.json"
    det.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, "x", 4], "score": 1}]))
    assert main(["infer", "--checkpoint", str(tiny_checkpoint), "--image", str(image),
                 "--boxes", str(det), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "det.json: detection #0" in err and "\n" not in err
    assert main(["infer", "--checkpoint", str(tiny_checkpoint), "--image",
                 str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg: --image" in capsys.readouterr().err
