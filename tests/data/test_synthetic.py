"""The built-in synthetic set: format, agreement with the renderer, determinism, content, CLI."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from argparse import Namespace
from pathlib import Path

import cv2
import numpy as np
import pytest

from autopose.cli import main
from autopose.config import SyntheticConfig
from autopose.data.keypoints import COCO17
from autopose.data.synthetic import ensure_synthetic, generate, render, run_synth_command
from autopose.data.synthetic import generator as gen_mod
from autopose.data.synthetic.figure import (
    KEYPOINT_PART_IDS, LENGTH, PARTS, RANGES, Pose, View, build_body, place_body, sample_appearance,
    sample_pose,
)
from autopose.data.synthetic.render import (
    Canvas, code_part, code_person, draw_body, keypoint_visibility,
)
from autopose.errors import UserError

SEED, W, H = 3, 640, 480


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "set"
    return generate(out, num_train=6, num_val=8, seed=SEED, image_size=[W, H])


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _anns_by_image(doc: dict) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        out.setdefault(a["image_id"], []).append(a)
    return out


# ----------------------------------------------------------------------------- format


def test_layout_and_pycocotools(small_set: Path):
    from pycocotools.coco import COCO

    assert (small_set / "README").read_text().startswith("AutoPose synthetic pose set")
    assert f"seed {SEED}" in (small_set / "README").read_text()
    for split, n in (("train", 6), ("val", 8)):
        ann = small_set / f"person_keypoints_{split}.json"
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ann))
        assert len(coco.getImgIds()) == n
        assert coco.getCatIds() == [1]
        cat = coco.loadCats(1)[0]
        assert cat["name"] == "person" and tuple(cat["keypoints"]) == COCO17.names
        assert [tuple(e) for e in cat["skeleton"]] == [(a + 1, b + 1) for a, b in COCO17.skeleton]
        assert len(coco.getAnnIds()) > 0
        for im in coco.loadImgs(coco.getImgIds()):
            path = small_set / "images" / split / im["file_name"]
            pixels = cv2.imread(str(path))
            assert pixels.shape == (im["height"], im["width"], 3) == (H, W, 3)
        for a in coco.loadAnns(coco.getAnnIds()):
            k = np.array(a["keypoints"], np.float64).reshape(17, 3)
            assert a["category_id"] == 1 and a["iscrowd"] == 0
            assert set(np.unique(k[:, 2])) <= {0, 1, 2}
            assert a["num_keypoints"] == int((k[:, 2] > 0).sum()) > 0
            out = k[:, 2] == 0
            assert (k[out, :2] == 0).all()
            lab = k[~out]
            assert (lab[:, 0] >= 0).all() and (lab[:, 0] <= W - 1).all()
            assert (lab[:, 1] >= 0).all() and (lab[:, 1] <= H - 1).all()
            x, y, w, h = a["bbox"]
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= W and y + h <= H
            # the box holds every labelled keypoint: a top-down crop never cuts one off
            assert (lab[:, 0] >= x - 1e-6).all() and (lab[:, 0] <= x + w).all()
            assert (lab[:, 1] >= y - 1e-6).all() and (lab[:, 1] <= y + h).all()
            assert 0 < a["area"] <= w * h


def test_loads_in_the_pipeline(small_set: Path):
    from autopose.config import load_config
    from autopose.data.coco import load_coco

    cfg = load_config(None, [f"data.val.images={small_set / 'images' / 'val'}",
                             f"data.val.ann={small_set / 'person_keypoints_val.json'}"])
    gt = load_coco(cfg.data.val, cfg.data, "val", quiet=True)
    doc = json.loads((small_set / "person_keypoints_val.json").read_text())
    assert len(gt.records) == len(doc["annotations"])


# --------------------------------------------------------- the json against the renderer


def test_json_keypoints_are_the_renderers_joints(small_set: Path):
    """Re-render every val image; the json's keypoints, flags and boxes are the renderer's,
    every visible keypoint lies on its own body part, every hidden one does not."""
    doc = json.loads((small_set / "person_keypoints_val.json").read_text())
    by_image = _anns_by_image(doc)
    n_vis = n_hidden = 0
    for im in doc["images"]:
        img, people, cv = render(SEED, "val", im["id"] - 1, W, H)
        # the written JPEG is this very image
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, gen_mod.JPEG_QUALITY])
        assert buf.tobytes() == (small_set / "images" / "val" / im["file_name"]).read_bytes()
        annotated = [p for p in people if (p.visibility > 0).any()]
        anns = by_image.get(im["id"], [])
        assert len(anns) == len(annotated)
        for a, p in zip(anns, annotated):
            k = np.array(a["keypoints"], np.float64).reshape(17, 3)
            np.testing.assert_array_equal(k[:, 2], p.visibility)
            lab = p.visibility > 0
            np.testing.assert_allclose(k[lab, :2], p.keypoints[lab], atol=0.006)
            assert a["bbox"] == pytest.approx(p.bbox, abs=0.006)
            assert a["area"] == p.area
            # drawn from the json: each labelled keypoint against the renderer's id map
            for j in np.nonzero(lab)[0]:
                u, v = int(round(k[j, 0])), int(round(k[j, 1]))
                code = int(cv.code[v, u])
                on_own_part = (code_person(code) == p.index
                               and code_part(code) in KEYPOINT_PART_IDS[j])
                if k[j, 2] == 2:
                    assert on_own_part, (im["id"], j)
                    n_vis += 1
                else:
                    n_hidden += 1
                    assert not on_own_part or cv.z[v, u] > p.body.keypoints[j, 2] + 1.0
        # people with no keypoint in view are not annotated
        for p in people:
            if not (p.visibility > 0).any():
                assert all(k == 0 for k in p.visibility)
    assert n_vis > 50 and n_hidden > 5


def test_views_left_right_and_self_occlusion():
    """Front view: the person's left is on the image's right; back view: the reverse;
    the far shoulder of a side view and the face of a back view are hidden."""
    app = sample_appearance(np.random.default_rng(0))
    flags = {}
    for yaw in (0.0, 180.0, 90.0):
        cv = Canvas(np.zeros((400, 300, 3), np.uint8), np.array([0.0, -0.5, 1.0]))
        body = place_body(build_body(Pose(), app), View(yaw, 0.0, 0.0, 360.0, (150, 200), 0.0))
        draw_body(cv, body, 0, np.zeros((400, 300), bool))
        kp = body.keypoints
        flags[yaw] = keypoint_visibility(cv, body, 0, KEYPOINT_PART_IDS)
        if yaw == 0.0:
            assert kp[5, 0] > kp[6, 0] and kp[11, 0] > kp[12, 0] and kp[1, 0] > kp[2, 0]
        if yaw == 180.0:
            assert kp[5, 0] < kp[6, 0] and kp[11, 0] < kp[12, 0]
    assert (flags[0.0] == 2).all()
    assert (flags[180.0][:3] == 1).all()  # nose and eyes face away
    assert (flags[180.0][5:] == 2).all()
    # yaw 90 turns the person's left side away from the camera
    assert flags[90.0][5] == 1 and flags[90.0][6] == 2
    assert flags[90.0][1] == 1 and flags[90.0][2] == 2


def test_human_proportions_and_ranges():
    body = build_body(Pose(shoulder_abd=[0.0, 0.0], elbow=[0.0, 0.0], hip_abd=[0.0, 0.0]),
                      sample_appearance(np.random.default_rng(1)))
    k = body.keypoints
    top = max(p.a[1] + np.linalg.norm(p.axes[:, 1]) for p in body.prims if p.shader == "head")
    sole = min(min(p.a[1], p.b[1]) - p.rb for p in body.prims if p.b is not None)
    assert top - sole == pytest.approx(1.0, abs=0.05)  # one unit of stature
    for (a, b), length in (((5, 7), LENGTH["upper_arm"]), ((7, 9), LENGTH["forearm"]),
                           ((11, 13), LENGTH["thigh"]), ((13, 15), LENGTH["shank"])):
        assert np.linalg.norm(k[a] - k[b]) == pytest.approx(length)
        assert np.linalg.norm(k[a + 1] - k[b + 1]) == pytest.approx(length)
    assert k[5, 0] == pytest.approx(-k[6, 0]) and k[5, 0] > 0  # left is +x
    rng = np.random.default_rng(2)
    for _ in range(300):
        pose = sample_pose(rng)
        for name, (lo, hi) in RANGES.items():
            v = np.atleast_1d(getattr(pose, name))
            assert (v >= lo).all() and (v <= hi).all(), name


def test_left_and_right_share_colours():
    rng = np.random.default_rng(4)
    for _ in range(20):
        body = build_body(sample_pose(rng), sample_appearance(rng))
        names: dict[str, list] = {}
        for p in body.prims:
            names.setdefault(PARTS[p.part], []).append(p.colour)
        for name, cols in names.items():
            if name.startswith("left_"):
                for c, d in zip(cols, names[name.replace("left_", "right_")]):
                    np.testing.assert_array_equal(c, d)


def test_content_statistics():
    """Over many images: 1-4 people, heights over a 4x range, every facing direction,
    in-plane rotation, overlaps, hidden and out-of-image keypoints."""
    heights, yaws, rolls, counts = [], [], [], []
    flags = np.zeros(3, np.int64)
    overlaps = 0
    for i in range(60):
        _, people, _ = render(5, "train", i, W, H)
        counts.append(len(people))
        boxes = []
        for p in people:
            heights.append(p.body.view.height_px)
            yaws.append(p.body.view.yaw)
            rolls.append(p.body.view.roll)
            flags += np.bincount(p.visibility, minlength=3)
            if (p.visibility > 0).any():
                boxes.append(p.bbox)
        for a in range(len(boxes)):
            for b in range(a):
                (x1, y1, w1, h1), (x2, y2, w2, h2) = boxes[a], boxes[b]
                if min(x1 + w1, x2 + w2) > max(x1, x2) and min(y1 + h1, y2 + h2) > max(y1, y2):
                    overlaps += 1
    assert set(counts) == {1, 2, 3, 4}
    assert min(heights) < 100 and max(heights) > 300 and max(heights) / min(heights) > 4
    yaws = np.abs(np.asarray(yaws))
    assert (yaws < 30).any() and (yaws > 150).any() and ((yaws > 60) & (yaws < 120)).any()
    assert (np.abs(rolls) > 30).any()
    assert overlaps > 5
    assert flags[0] > 0 and flags[1] > 0.05 * flags.sum() and flags[2] > 0.5 * flags.sum()


def test_easy_level_one_camera_facing_person_no_distractors_or_occluders():
    """Level easy: one annotated person per image, tall, facing the camera, upright; nothing
    limb-shaped or occluding is drawn. The standard level draws both (and more people)."""
    from autopose.data.synthetic.render import CODE_DISTRACTOR, CODE_OCCLUDER

    codes_easy, codes_std = set(), set()
    for i in range(25):
        _, people, cv = render(5, "train", i, W, H, "easy")
        codes_easy |= set(np.unique(cv.code).tolist())
        assert len(people) == 1
        v = people[0].body.view
        assert v.height_px >= 160 * H / 480 - 1e-6
        assert abs(v.yaw) <= 40 and abs(v.roll) <= 15
        _, std_people, cv = render(5, "train", i, W, H)
        codes_std |= set(np.unique(cv.code).tolist())
    assert CODE_DISTRACTOR not in codes_easy and CODE_OCCLUDER not in codes_easy
    assert CODE_DISTRACTOR in codes_std and CODE_OCCLUDER in codes_std


def test_level_keys_the_cache_and_bad_level_is_named(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("AUTOPOSE_CACHE", str(tmp_path / "cache"))
    std = gen_mod.cache_dir(SyntheticConfig())
    easy = gen_mod.cache_dir(SyntheticConfig(level="easy"))
    assert easy.name == std.name + "-easy"
    with pytest.raises(UserError, match=r"data\.synthetic\.level.*'hard'"):
        gen_mod.cache_dir(SyntheticConfig(level="hard"))
    out = generate(tmp_path / "e", 2, 1, seed=1, image_size=[160, 120], level="easy")
    readme = (out / "README").read_text()
    assert "--level easy" in readme and "Level easy" in readme
    doc = json.loads((out / "person_keypoints_train.json").read_text())
    assert doc["info"]["level"] == "easy"


# ------------------------------------------------------------------------ determinism


def test_same_seed_same_bytes_other_seed_differs(small_set: Path, tmp_path: Path):
    again = generate(tmp_path / "again", num_train=6, num_val=8, seed=SEED, image_size=[W, H])
    assert _hashes(again) == _hashes(small_set)
    other = generate(tmp_path / "other", num_train=6, num_val=8, seed=SEED + 1, image_size=[W, H])
    h_other, h_same = _hashes(other), _hashes(small_set)
    assert h_other.keys() == h_same.keys()
    differ = [k for k in h_same if h_same[k] != h_other[k]]
    assert len(differ) >= len(h_same) - 1  # every image and json (README names the seed too)


def test_worker_processes_write_the_same_bytes(tmp_path: Path):
    one = generate(tmp_path / "one", 100, 2, seed=7, image_size=[160, 120], workers=1)
    two = generate(tmp_path / "two", 100, 2, seed=7, image_size=[160, 120], workers=2)
    assert _hashes(one) == _hashes(two)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]


# ---------------------------------------------------------------------- CLI and cache


def test_cli_synth(tmp_path: Path, capsys):
    out = tmp_path / "D"
    assert main(["data", "synth", "--out", str(out), "--num-train", "8", "--num-val", "4",
                 "--seed", "3"]) == 0
    assert len(list((out / "images" / "train").glob("*.jpg"))) == 8
    assert len(list((out / "images" / "val").glob("*.jpg"))) == 4
    assert (out / "person_keypoints_train.json").is_file()
    assert (out / "person_keypoints_val.json").is_file()
    assert "--seed 3" in (out / "README").read_text()
    assert "wrote 8 train + 4 val images" in capsys.readouterr().out
    # a second run replaces the set; no temporary folder is left beside it
    assert main(["data", "synth", "--out", str(out), "--num-train", "2", "--num-val", "1"]) == 0
    assert len(list((out / "images" / "train").glob("*.jpg"))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["D"]


@pytest.mark.parametrize("argv", [
    ["--image-size", "abc"], ["--image-size", "10x10"], ["--num-train", "-1"],
    ["--num-val", "-3"], ["--seed", "-1"], ["--num-train", "0", "--num-val", "0"],
])
def test_cli_bad_args(tmp_path: Path, capsys, argv):
    out = tmp_path / "D"
    assert main(["data", "synth", "--out", str(out)] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autopose: error:") and "\n" not in err
    assert not out.exists()


def test_cli_refuses_a_folder_with_other_files(tmp_path: Path, capsys):
    (tmp_path / "D").mkdir()
    (tmp_path / "D" / "notes.txt").write_text("mine")
    assert main(["data", "synth", "--out", str(tmp_path / "D"), "--num-train", "1",
                 "--num-val", "1"]) == 2
    assert (tmp_path / "D" / "notes.txt").read_text() == "mine"


def test_run_synth_command_defaults(monkeypatch, tmp_path: Path):
    seen = {}

    def fake(out, num_train, num_val, seed, image_size, workers=1, level="?"):
        seen.update(num_train=num_train, num_val=num_val, seed=seed, size=image_size, level=level)
        return Path(out)

    monkeypatch.setattr(gen_mod, "generate", fake)
    d = SyntheticConfig()
    assert run_synth_command(Namespace(out=tmp_path / "x", num_train=None, num_val=None,
                                       seed=None, image_size=None)) == 0
    assert seen == dict(num_train=d.num_train, num_val=d.num_val, seed=d.seed, size=d.image_size,
                        level="standard")
    assert run_synth_command(Namespace(out=tmp_path / "x", num_train=None, num_val=None,
                                       seed=None, image_size=None, level="easy")) == 0
    assert seen["level"] == "easy"


def test_generate_api_checks(tmp_path: Path):
    with pytest.raises(UserError):
        generate(tmp_path / "a", -1, 2, 0, [640, 480])
    with pytest.raises(UserError):
        generate(tmp_path / "a", 1, 1, 0, [640])


def test_killed_generation_leaves_nothing(monkeypatch, tmp_path: Path):
    real = gen_mod.render
    calls = {"n": 0}

    def dies(*a, **k):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(gen_mod, "render", dies)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "set", 5, 2, 0, [160, 120])
    assert list(tmp_path.iterdir()) == []


def test_ensure_synthetic_generates_once_into_the_cache(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("AUTOPOSE_CACHE", str(tmp_path / "cache"))
    cfg = SyntheticConfig(num_train=3, num_val=2, seed=1, image_size=[160, 120])
    path = ensure_synthetic(cfg)
    assert path.parent.parent == tmp_path / "cache"
    assert (path / "person_keypoints_val.json").is_file()
    before = _hashes(path)

    def boom(*a, **k):
        raise AssertionError("regenerated a cached set")

    monkeypatch.setattr(gen_mod, "generate", boom)
    assert ensure_synthetic(cfg) == path
    assert _hashes(path) == before
    # another seed is another folder
    monkeypatch.undo()
    monkeypatch.setenv("AUTOPOSE_CACHE", str(tmp_path / "cache"))
    other = ensure_synthetic(SyntheticConfig(num_train=1, num_val=1, seed=2, image_size=[160, 120]))
    assert other != path and other.parent == path.parent
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == \
        sorted([path.name, other.name])


# ---------------------------------------------------------------------------- oracle


def test_oracle_ap_on_the_val_split(small_set: Path, tmp_path: Path):
    """Ground-truth heatmaps through the whole test path score (almost) perfectly."""
    out = tmp_path / "run"
    argv = ["test", "--oracle", "--out", str(out),
            f"data.val.images={small_set / 'images' / 'val'}",
            f"data.val.ann={small_set / 'person_keypoints_val.json'}", "data.workers=0"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["AP"] >= 0.95


def test_ensure_synthetic_clears_a_killed_generation(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("AUTOPOSE_CACHE", str(tmp_path))
    cfg = SyntheticConfig(num_train=1, num_val=1, seed=0, image_size=[96, 64])
    target = gen_mod.cache_dir(cfg)
    stale = target.parent / f".{target.name}.tmp-dead"
    (stale / "images").mkdir(parents=True)
    assert ensure_synthetic(cfg) == target
    assert not stale.exists() and gen_mod.is_synthetic_set(target)
