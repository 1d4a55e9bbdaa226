"""The bad-input corpus: every case is a file or a command line a user may well give.

Each exit-2 case runs ``autopose`` in-process and checks: exit code 2, exactly one
``autopose: error:`` line naming the file (and the field), no traceback, and nothing under
the case's folder written or changed (an existing ``--out`` folder keeps its file). Every
case fails before any training or prediction, so the whole corpus takes seconds. The last
tests are inputs that are not errors: skipped and counted, or clipped.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autopose.cli import main
from bad_input_helpers import one_error_line, snapshot, tiny_checkpoint, tiny_genotype
from conftest import val_overrides

MMPOSE_IMAGES = ("000000000785.jpg", "000000040083.jpg", "000000196141.jpg", "000000197388.jpg")


class Case:
    """A case folder: copies of the sample data, a checkpoint, an ``--out`` with a file."""

    def __init__(self, root: Path, coco: dict[str, str], mpii: dict[str, str], ckpt: Path,
                 onnx: Path):
        self.root, self.coco, self.mpii, self.ckpt, self.exported = root, coco, mpii, ckpt, onnx
        self.out = root / "out"
        self.out.mkdir()
        (self.out / "keep.txt").write_text("an earlier run's file\n")

    def doc(self) -> dict[str, Any]:
        return json.loads(Path(self.coco["ann"]).read_text())

    def dets(self) -> list[dict[str, Any]]:
        return json.loads(Path(self.coco["det"]).read_text())

    def write(self, name: str, obj: Any) -> Path:
        path = self.root / name
        path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
        return path

    def images(self) -> Path:
        """The sample images, copied (a case may damage one)."""
        folder = self.root / "images"
        if not folder.is_dir():
            folder.mkdir()
            for im in self.doc()["images"]:
                shutil.copy(Path(self.coco["images"]) / im["file_name"], folder)
        return folder

    def person(self, doc: dict[str, Any]) -> dict[str, Any]:
        return next(a for a in doc["annotations"] if a["num_keypoints"] > 0)

    def test_ann(self, doc: Any, *extra: str, images: Path | None = None) -> list[str]:
        """``autopose test --oracle`` on an annotation file."""
        ann = self.write("ann.json", doc)
        return (["test", "--oracle", "--out", str(self.out)]
                + val_overrides(str(images or self.coco["images"]), str(ann)) + list(extra))

    def test_dets(self, dets: Any) -> list[str]:
        det = self.write("det.json", dets)
        return (["test", "--oracle", "--out", str(self.out)]
                + val_overrides(self.coco["images"], self.coco["ann"],
                                **{"data.val.det_file": det}))

    def infer(self, *args: str, image: Path | None = None, model: Path | None = None
              ) -> list[str]:
        return ["infer", "--checkpoint", str(model or self.ckpt), "--image",
                str(image or self.coco["images"]), "--out", str(self.out), *args]

    def video(self, dets: Any = None) -> list[str]:
        """``infer --video`` on a 3-frame video of the case (with ``dets`` as --boxes)."""
        import cv2
        import numpy as np

        path = self.root / "clip.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
        for i in range(3):
            writer.write(np.full((48, 64, 3), 60 * i, np.uint8))
        writer.release()
        boxes = ["--boxes", str(self.write("det.json", dets))] if dets is not None else []
        return ["infer", "--checkpoint", str(self.ckpt), "--video", str(path),
                "--out", str(self.out), *boxes]

    def onnx(self, change: Callable[[dict[str, str]], None]) -> Path:
        """A copy of the exported model with its metadata changed by ``change``."""
        import onnx

        proto = onnx.load(str(self.exported))
        meta = {p.key: p.value for p in proto.metadata_props}
        change(meta)
        del proto.metadata_props[:]
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        path = self.root / "model.onnx"
        onnx.save(proto, str(path))
        return path

    def mpii_test(self, mutate: Callable[[dict[str, Any]], None]) -> list[str]:
        doc = json.loads(Path(self.mpii["ann"]).read_text())
        mutate(doc[0])
        ann = self.write("mpii.json", doc)
        return ["test", "--oracle", "--out", str(self.out), "data.format=mpii",
                f"data.val.images={self.mpii['images']}", f"data.val.ann={ann}",
                "data.workers=0"]

    def train_args(self, doc: Any, images: Path | None = None) -> list[str]:
        """``key=value`` overrides with ``doc`` as the training annotations."""
        ann = self.write("train.json", doc)
        return val_overrides(self.coco["images"], self.coco["ann"]) + [
            f"data.train.images={images or self.coco['images']}", f"data.train.ann={ann}"]

    def genotype(self, change: Callable[[dict[str, Any]], None]) -> list[str]:
        g = tiny_genotype().to_dict()
        change(g)
        path = self.write("genotype.json", g)
        return ["train", "--genotype", str(path), "--out", str(self.out)] + \
            self.train_args(self.doc())

    def damage(self, name: str, cut: Callable[[bytes], bytes]) -> Path:
        folder = self.images()
        (folder / name).write_bytes(cut((folder / name).read_bytes()))
        return folder


def _set(doc: Any, *path_and_value: Any) -> Any:
    *path, value = path_and_value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _person_set(c: Case, field: str, value: Any, index: int | None = None) -> list[str]:
    doc = c.doc()
    p = c.person(doc)
    if index is None:
        p[field] = value
    else:
        p[field][index] = value
    return c.test_ann(doc)


def _k5_doc(c: Case) -> dict[str, Any]:
    """The sample file with a 5-joint layout (the first five COCO joints)."""
    doc = c.doc()
    doc["categories"][0]["keypoints"] = doc["categories"][0]["keypoints"][:5]
    doc["categories"][0]["skeleton"] = [[1, 2]]
    for a in doc["annotations"]:
        a["keypoints"] = a["keypoints"][:15]
        a["num_keypoints"] = sum(v > 0 for v in a["keypoints"][2::3])
    doc["annotations"] = [a for a in doc["annotations"] if a["num_keypoints"] > 0]
    return doc


def _jpeg_garbage(data: bytes) -> bytes:
    """A JPEG start, then noise, then a proper end marker: only a decode can tell."""
    return data[:2] + bytes(range(256)) * 8 + b"\xff\xd9"


def _png(c: Case) -> Path:
    """The sample images, one of them re-encoded as a truncated PNG (named .jpg in the file)."""
    import cv2

    folder = c.images()
    img = cv2.imread(str(folder / MMPOSE_IMAGES[0]))
    ok, buf = cv2.imencode(".png", img)
    (folder / MMPOSE_IMAGES[0]).write_bytes(buf.tobytes()[: len(buf) // 2])
    return folder


# name -> (the command line of the case, words its error line must hold)
CASES: dict[str, tuple[Callable[[Case], list[str]], tuple[str, ...]]] = {
    # COCO-format annotation files (autopose test)
    "ann_keypoint_as_string": (lambda c: _person_set(c, "keypoints", "12.5", 0),
                               ("ann.json", "annotation id=", "keypoints")),
    "ann_category_id_string": (lambda c: _person_set(c, "category_id", "person"),
                               ("ann.json", "annotation id=", "category_id", "'person'")),
    "ann_image_id_string": (lambda c: _person_set(c, "image_id", "abc"),
                            ("ann.json", "annotation id=", "image_id")),
    "ann_image_id_list": (lambda c: _person_set(c, "image_id", [1]),
                          ("ann.json", "annotation id=", "image_id")),
    "ann_area_string": (lambda c: _person_set(c, "area", "big"),
                        ("ann.json", "annotation id=", "area")),
    "ann_id_string": (lambda c: c.test_ann(_set(c.doc(), "annotations", 0, "id", "x1")),
                      ("ann.json", "annotations[0]", "id", "'x1'")),
    "ann_bbox_bool": (lambda c: _person_set(c, "bbox", True, 1),
                      ("ann.json", "annotation id=", "bbox")),
    "ann_keypoints_nested": (lambda c: _person_set(c, "keypoints", [[0, 0, 0]] * 17),
                             ("ann.json", "annotation id=", "keypoints")),
    "ann_keypoint_infinite": (lambda c: _person_set(c, "keypoints", float("inf"), 3),
                              ("ann.json", "annotation id=", "keypoints", "infinity")),
    "ann_iscrowd_2": (lambda c: _person_set(c, "iscrowd", 2),
                      ("ann.json", "annotation id=", "iscrowd")),
    "ann_width_string": (lambda c: c.test_ann(_set(c.doc(), "images", 0, "width", "wide")),
                         ("ann.json", "image id=", "width", "'wide'")),
    "ann_duplicate_image_id": (
        lambda c: c.test_ann(_set(c.doc(), "images", 1, "id", c.doc()["images"][0]["id"])),
        ("ann.json", "image id=", "used by two images")),
    "ann_annotations_not_a_list": (lambda c: c.test_ann(_set(c.doc(), "annotations", 5)),
                                   ("ann.json", "annotations", "expected a list")),
    "ann_skeleton_flat": (lambda c: c.test_ann(_set(c.doc(), "categories", 0, "skeleton",
                                                    [1, 2, 3])),
                          ("ann.json", "skeleton")),
    # detection files (autopose test)
    "det_category_id_string": (lambda c: c.test_dets(_set(c.dets(), 2, "category_id", "person")),
                               ("det.json", "detection #2", "category_id")),
    "det_image_id_string": (lambda c: c.test_dets(_set(c.dets(), 4, "image_id", "one")),
                            ("det.json", "detection #4", "image_id")),
    "det_score_nan": (lambda c: c.test_dets(_set(c.dets(), 0, "score", float("nan"))),
                      ("det.json", "detection #0", "score")),
    # autopose infer
    "infer_boxes_category_id_string": (
        lambda c: c.infer("--boxes", str(c.write("det.json", _set(c.dets(), 1, "category_id",
                                                                  "person")))),
        ("det.json", "detection #1", "category_id")),
    "infer_boxes_image_id_string": (
        lambda c: c.infer("--boxes", str(c.write("det.json", _set(c.dets(), 1, "image_id",
                                                                  "one")))),
        ("det.json", "detection #1", "image_id")),
    "infer_box_nan": (lambda c: c.infer("--box", "0,0,nan,10"), ("--box",)),
    "infer_truncated_jpeg": (
        lambda c: c.infer(image=c.damage(MMPOSE_IMAGES[1], lambda b: b[: len(b) // 2])),
        (MMPOSE_IMAGES[1], "truncated JPEG")),
    # autopose infer: the network's options and files
    "infer_backend_unknown": (lambda c: c.infer("--backend", "tensorrt"),
                              ("--backend", "torch or onnxruntime", "'tensorrt'")),
    "infer_threads_zero": (lambda c: c.infer("--threads", "0"),
                           ("--threads", "positive integer", "'0'")),
    "infer_threads_word": (lambda c: c.infer("--threads", "all"), ("--threads", "'all'")),
    "infer_batch_negative": (lambda c: c.infer("--batch", "-3"), ("--batch", "'-3'")),
    "infer_onnx_on_torch": (lambda c: c.infer("--backend", "torch", model=c.exported),
                            ("model.onnx", "--backend torch runs a .pt", "onnxruntime")),
    "infer_onnx_missing": (lambda c: c.infer(model=c.root / "none.onnx"),
                           ("none.onnx", "no such file")),
    "infer_onnx_garbage": (
        lambda c: c.infer(model=c.write("garbage.onnx", "not a model")),
        ("garbage.onnx", "ONNX Runtime cannot load it")),
    "infer_onnx_without_metadata": (
        lambda c: c.infer(model=c.onnx(lambda m: m.clear())),
        ("model.onnx", "not an autopose model", "autopose export")),
    "infer_onnx_exported_by_an_older_autopose": (
        lambda c: c.infer(model=c.onnx(lambda m: [m.pop(k) for k in (
            "autopose.config", "autopose.keypoint_layout", "autopose.metadata_version")])),
        ("model.onnx", "exported by an older autopose", "export it again")),
    "infer_onnx_from_a_newer_autopose": (
        lambda c: c.infer(model=c.onnx(lambda m: m.update({"autopose.metadata_version": "3"}))),
        ("model.onnx", "autopose.metadata_version '3'", "this autopose reads 2")),
    "infer_onnx_config_not_json": (
        lambda c: c.infer(model=c.onnx(lambda m: m.update({"autopose.config": "{"}))),
        ("model.onnx", "autopose.config", "not valid JSON")),
    "infer_onnx_config_bad_value": (
        lambda c: c.infer(model=c.onnx(lambda m: m.update({"autopose.config": json.dumps(
            _set(json.loads(m["autopose.config"]), "data", "sigma", -1))}))),
        ("model.onnx", "autopose.config", "data.sigma")),
    "infer_onnx_input_size_disagrees": (
        lambda c: c.infer(model=c.onnx(lambda m: m.update({"autopose.config": json.dumps(
            _set(json.loads(m["autopose.config"]), "data", "input_size", [128, 96]))}))),
        ("model.onnx", "not images (N, 3, 128, 96)")),
    # autopose infer --video
    "infer_video_unreadable": (
        lambda c: ["infer", "--checkpoint", str(c.ckpt), "--video",
                   str(c.write("clip.mp4", "not a video")), "--out", str(c.out)],
        ("clip.mp4", "--video", "cannot read a frame")),
    "infer_video_missing": (
        lambda c: ["infer", "--checkpoint", str(c.ckpt), "--video", str(c.root / "no.mp4"),
                   "--out", str(c.out)], ("no.mp4", "--video", "no such file")),
    "infer_video_frame_index_string": (
        lambda c: c.video([{"image_id": "2", "bbox": [0, 0, 10, 10], "score": 1}]),
        ("det.json", "detection #0", "image_id", "expected an integer")),
    "infer_video_frame_index_negative": (
        lambda c: c.video([{"image_id": 0, "bbox": [0, 0, 10, 10], "score": 1},
                           {"image_id": -1, "bbox": [0, 0, 10, 10], "score": 1}]),
        ("det.json", "detection #1", "image_id", ">= 0")),
    "infer_video_frame_by_file_name": (
        lambda c: c.video([{"file_name": "0.jpg", "bbox": [0, 0, 10, 10], "score": 1}]),
        ("det.json", "detection #0", "needs image_id, the frame index")),
    # MPII json
    "mpii_joints_flat": (lambda c: c.mpii_test(lambda r: r.update(
        joints=[v for xy in r["joints"] for v in xy])), ("mpii.json", "record #0", "joints")),
    "mpii_scale_string": (lambda c: c.mpii_test(lambda r: r.update(scale="4.7")),
                          ("mpii.json", "record #0", "scale")),
    "mpii_joints_vis_2": (lambda c: c.mpii_test(lambda r: r["joints_vis"].__setitem__(0, 2)),
                          ("mpii.json", "record #0", "joints_vis")),
    # images (autopose test)
    "image_truncated_jpeg": (
        lambda c: c.test_ann(c.doc(), images=c.damage(MMPOSE_IMAGES[2],
                                                      lambda b: b[: len(b) * 2 // 3])),
        (MMPOSE_IMAGES[2], "image id=", "truncated JPEG")),
    "image_garbage_after_header": (
        lambda c: c.test_ann(c.doc(), images=c.damage(MMPOSE_IMAGES[3], _jpeg_garbage)),
        (MMPOSE_IMAGES[3], "image id=", "cannot be decoded")),
    "image_truncated_png": (lambda c: c.test_ann(c.doc(), images=_png(c)),
                            (MMPOSE_IMAGES[0], "truncated PNG")),
    # a model tested on data with another joint count
    "test_17_joint_model_on_5_joints": (
        lambda c: ["test", "--checkpoint", str(c.ckpt), "--out", str(c.out)]
        + val_overrides(c.coco["images"], str(c.write("k5.json", _k5_doc(c))))
        + ["data.keypoints.flip_pairs=[[1,2],[3,4]]",
           "data.keypoints.sigmas=[0.03,0.03,0.03,0.03,0.03]"],
        ("model.pt", "arch.num_joints", "17 joints", "k5.json has 5")),
    # genotype files (autopose train --genotype)
    "genotype_version_true": (lambda c: c.genotype(lambda g: g.update(version=True)),
                              ("genotype.json", "version")),
    "genotype_nodes_huge": (
        lambda c: c.genotype(lambda g: g["individual_cell"].update(nodes=10 ** 6)),
        ("genotype.json", "individual_cell.nodes", "at most")),
    "genotype_op_a_list": (lambda c: c.genotype(lambda g: g["ops"].__setitem__(0, ["skip"])),
                           ("genotype.json", "ops[0]")),
    "flops_genotype_width_mult_nan": (
        lambda c: ["flops", "--model",
                   str(c.write("genotype.json", _set(tiny_genotype().to_dict(), "width_mult",
                                                     float("nan"))))],
        ("genotype.json", "width_mult")),
    # autopose train and search on bad data: each stops before a step is taken
    "train_keypoint_as_string": (
        lambda c: ["train", "--model", "hrnet_w32", "--out", str(c.out)]
        + c.train_args(_set(c.doc(), "annotations", 0, "keypoints", 0, "12.5")),
        ("train.json", "annotation id=", "keypoints")),
    "search_annotations_not_a_list": (
        lambda c: ["search", "--out", str(c.out)] + c.train_args(_set(c.doc(), "annotations", 5)),
        ("train.json", "annotations", "expected a list")),
    "search_truncated_image": (
        lambda c: ["search", "--out", str(c.out)] + c.train_args(
            c.doc(), images=c.damage(MMPOSE_IMAGES[2], lambda b: b[:-100])),
        (MMPOSE_IMAGES[2], "truncated JPEG", "data.corrupt_images=skip")),
    "config_corrupt_images_bad_choice": (
        lambda c: c.test_ann(c.doc(), "data.corrupt_images=maybe"),
        ("data.corrupt_images", "error, skip")),
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture(scope="module")
def exported(checkpoint: Path) -> Path:
    """The checkpoint exported to ONNX, with the metadata infer reads."""
    from autopose.engine.export import run_export_command

    run_export_command(checkpoint, "onnx", checkpoint.with_name("model.onnx"))
    return checkpoint.with_name("model.onnx")


@pytest.fixture
def case(tmp_path: Path, mmpose_coco, mmpose_mpii, checkpoint, exported) -> Case:
    return Case(tmp_path, mmpose_coco, mmpose_mpii, checkpoint, exported)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_case(name: str, case: Case, capsys) -> None:
    make, words = CASES[name]
    argv = make(case)
    before = snapshot(case.root)
    code = main(argv)
    err = capsys.readouterr().err
    line = one_error_line(err)
    assert code == 2, err
    for w in words:
        assert w in line, (w, line)
    assert snapshot(case.root) == before


def test_corpus_size() -> None:
    assert len(CASES) >= 28


def _summary(out: str) -> str:
    return next(ln for ln in out.splitlines() if ln.startswith("autopose infer:"))


def test_infer_clips_a_huge_box_to_the_image(case: Case, capsys) -> None:
    image = Path(case.coco["images"]) / MMPOSE_IMAGES[0]
    assert main(case.infer("--box", "0,0,1e30,1e30", image=image)) == 0
    results = json.loads((case.out / "results.json").read_text())
    import cv2

    h, w = cv2.imread(str(image)).shape[:2]
    assert [r["bbox"] for r in results] == [[0.0, 0.0, float(w), float(h)]]
    assert (case.out / "keep.txt").read_text() == "an earlier run's file\n"


def test_infer_counts_the_boxes_it_skips(case: Case, capsys) -> None:
    image = Path(case.coco["images"]) / MMPOSE_IMAGES[0]
    dets = [{"image_id": 785, "bbox": [10, 20, 100, 200], "score": 0.9},
            {"image_id": 785, "bbox": [10, 20, -5, 200], "score": 0.9},
            {"image_id": 42, "bbox": [10, 20, 100, 200], "score": 0.9},
            {"file_name": "other.jpg", "bbox": [10, 20, 100, 200], "score": 0.9}]
    code = main(case.infer("--boxes", str(case.write("det.json", dets)), image=image))
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err
    line = _summary(out)
    assert "1 person(s)" in line
    assert "1 non-positive width or height" in line and "2 unknown image" in line


def test_corrupt_images_skip_counts_them(case: Case, capsys) -> None:
    folder = case.damage(MMPOSE_IMAGES[2], lambda b: b[: len(b) // 2])
    case.damage(MMPOSE_IMAGES[3], _jpeg_garbage)
    assert main(case.test_ann(case.doc(), "data.corrupt_images=skip", images=folder)) == 0
    err = capsys.readouterr().err
    summary = [ln for ln in err.splitlines() if "ann.json" in ln and "skipped" in ln]
    assert len(summary) == 1 and "damaged image" in summary[0], err
    assert "Traceback" not in err
