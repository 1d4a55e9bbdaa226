"""Bad input: one line naming the file and the record, exit code 2, no traceback."""

import copy
import json
import shutil
from pathlib import Path

import pytest

from autopose.cli import main
from conftest import val_overrides


def _doc(mmpose_coco) -> dict:
    return json.loads(Path(mmpose_coco["ann"]).read_text())


def _run(tmp_path, capsys, images, doc_or_text, extra=()):
    ann = tmp_path / "ann.json"
    ann.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text))
    code = main(["test", "--oracle", "--out", str(tmp_path / "out")]
                + val_overrides(images, str(ann)) + list(extra))
    err = capsys.readouterr().err
    return code, err, ann


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("autopose: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _first_person(doc):
    return next(a for a in doc["annotations"] if a["num_keypoints"] > 0)


@pytest.mark.parametrize("case,needle", [
    ("malformed_json", "not valid JSON"),
    ("missing_annotations", "missing 'annotations'"),
    ("missing_bbox", "missing 'bbox'"),
    ("negative_box", "bbox: negative width or height"),
    ("nan_keypoints", "keypoints: contains NaN"),
    ("short_keypoints", "keypoints: expected 51 numbers, got 48"),
    ("unknown_category", "unknown category_id 7"),
    ("unknown_image", "image_id 123 is not in 'images'"),
    ("missing_image_file", "file missing"),
    ("empty", "empty dataset"),
])
def test_bad_annotation_file(mmpose_coco, tmp_path, capsys, case, needle):
    doc = _doc(mmpose_coco)
    person = _first_person(doc)
    if case == "malformed_json":
        doc = json.dumps(doc)[:-20]
    elif case == "missing_annotations":
        del doc["annotations"]
    elif case == "missing_bbox":
        del person["bbox"]
    elif case == "negative_box":
        person["bbox"][2] = -5
    elif case == "nan_keypoints":
        doc = json.dumps(doc).replace(json.dumps(person["keypoints"])[:-1],
                                      json.dumps(person["keypoints"])[:-1] + ", NaN", 1)
        doc = doc.replace(", NaN, ", ", NaN]  ", 1) if False else doc
        d = json.loads(doc.replace(", NaN", "", 1))
        kp = _first_person(d)["keypoints"]
        kp[0] = float("nan")
        doc = json.dumps(d)  # json.dumps writes NaN, which Python's parser accepts
    elif case == "short_keypoints":
        person["keypoints"] = person["keypoints"][:48]
    elif case == "unknown_category":
        person["category_id"] = 7
    elif case == "unknown_image":
        person["image_id"] = 123
    elif case == "missing_image_file":
        doc["images"][0]["file_name"] = "nope.jpg"
    elif case == "empty":
        doc["annotations"] = []
    code, err, ann = _run(tmp_path, capsys, mmpose_coco["images"], doc)
    line = _one_error_line(err)
    assert code == 2
    assert needle in line
    assert str(ann) in line or "nope.jpg" in line
    if case in {"missing_bbox", "negative_box", "nan_keypoints", "short_keypoints",
                "unknown_category", "unknown_image"}:
        assert f"annotation id={person['id']}" in line


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_file(mmpose_coco, tmp_path, capsys, workers):
    doc = _doc(mmpose_coco)
    images = tmp_path / "images"
    images.mkdir()
    for im in doc["images"]:
        shutil.copy(Path(mmpose_coco["images"]) / im["file_name"], images / im["file_name"])
    broken = doc["images"][1]
    (images / broken["file_name"]).write_bytes(b"\xff\xd8 this is not a jpeg")
    code, err, _ = _run(tmp_path, capsys, str(images), doc, [f"data.workers={workers}"])
    line = _one_error_line(err)
    assert code == 2
    assert broken["file_name"] in line and f"image id={broken['id']}" in line
    assert "cannot be decoded" in line


def test_dropped_records_are_counted(mmpose_coco, tmp_path, capsys):
    doc = _doc(mmpose_coco)
    extra = copy.deepcopy(_first_person(doc))
    extra.update(id=1, iscrowd=1)
    zero = copy.deepcopy(_first_person(doc))
    zero.update(id=2, area=0.0)
    zero["bbox"][2] = 0
    doc["annotations"] += [extra, zero]
    code, err, ann = _run(tmp_path, capsys, mmpose_coco["images"], doc)
    assert code == 0
    summary = [ln for ln in err.splitlines() if str(ann) in ln and "skipped" in ln]
    assert len(summary) == 1
    assert "12 person instances" in summary[0]
    assert "1 crowd" in summary[0] and "1 zero-area box" in summary[0]
    assert "2 no labelled keypoint" in summary[0]


def test_custom_layout_needs_flip_pairs_and_sigmas(mmpose_coco, tmp_path, capsys):
    doc = _doc(mmpose_coco)
    doc["categories"][0]["keypoints"] = [f"j{i}" for i in range(17)]
    code, err, _ = _run(tmp_path, capsys, mmpose_coco["images"], doc)
    assert code == 2 and "data.keypoints.flip_pairs: required" in _one_error_line(err)
    code, err, _ = _run(tmp_path, capsys, mmpose_coco["images"], doc,
                        ["data.keypoints.flip_pairs=[[1,2]]", "data.keypoints.sigmas=[0.1,0.2]"])
    assert code == 2 and "data.keypoints.sigmas: need 17 positive values" in _one_error_line(err)
    code, err, _ = _run(tmp_path, capsys, mmpose_coco["images"], doc,
                        ["data.keypoints.flip_pairs=[[1,2],[2,3]]"])
    assert code == 2 and "joint in two pairs" in _one_error_line(err)
    code, _, _ = _run(tmp_path, capsys, mmpose_coco["images"], doc,
                      ["data.keypoints.flip_pairs=[[1,2],[3,4]]",
                       f"data.keypoints.sigmas=[{','.join(['0.05'] * 17)}]"])
    assert code == 0


def test_bad_detection_file(mmpose_coco, tmp_path, capsys):
    dets = json.loads(Path(mmpose_coco["det"]).read_text())
    dets[3]["image_id"] = 999
    det = tmp_path / "det.json"
    det.write_text(json.dumps(dets))
    code = main(["test", "--oracle", "--out", str(tmp_path / "o")]
                + val_overrides(mmpose_coco["images"], mmpose_coco["ann"],
                                **{"data.val.det_file": det}))
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and str(det) in line and "detection #3" in line and "999" in line


def test_bad_config_key_exit_code(capsys):
    assert main(["test", "--oracle", "data.nosuch=1"]) == 2
    assert "data.nosuch: unknown key" in _one_error_line(capsys.readouterr().err)
