"""The top-down dataset end to end: pixels, joints and targets stay together through every
augmentation, including the mirror folded into the affine matrix."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from autopose.config import load_config
from autopose.data.coco import load_coco
from autopose.data.keypoints import COCO17
from autopose.data.topdown import TopDownDataset


def _dotted_set(tmp_path: Path):
    """One image with a dot of a distinct colour at each of 17 joints of one person."""
    rng = np.random.default_rng(0)
    img = np.full((480, 640, 3), 128, np.uint8)
    # Dots on a shuffled grid 55 px apart, so that no two overlap.
    grid = np.array([(230 + 55 * c, 110 + 55 * r) for r in range(5) for c in range(4)], float)
    joints = grid[rng.permutation(len(grid))[:17]]
    colors = [(int(20 + 13 * j), int(250 - 12 * j), int((97 * j) % 256)) for j in range(17)]
    for (x, y), c in zip(joints, colors):
        cv2.circle(img, (int(x), int(y)), 7, c, -1)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    kps = np.concatenate([joints, np.full((17, 1), 2)], 1)
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 640, "height": 480}],
           "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.names),
                           "skeleton": []}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                            "area": 20000.0, "bbox": [180, 80, 280, 320],
                            "keypoints": kps.reshape(-1).tolist()}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    return colors


def test_training_crops_keep_pixels_and_joints_together(tmp_path):
    colors = _dotted_set(tmp_path)
    cfg = load_config(None, [f"data.train.images={tmp_path}",
                             f"data.train.ann={tmp_path / 'ann.json'}"])
    coco = load_coco(cfg.data.train, cfg.data, "train", quiet=True)
    ds = TopDownDataset(coco.records * 40, coco.info, cfg.data, train=True, seed=1)
    flips = 0
    for i in range(len(ds)):
        item = ds[i]
        rgb = item["image"].numpy().transpose(1, 2, 0)
        params, _, _ = ds.crop_params(ds.records[i], 640, i)
        flips += params.flipped
        joints = item["joints"].numpy()
        for j in range(17):
            x, y = joints[j]
            if not (3 <= x < 189 and 3 <= y < 253) or item["target_weight"][j] == 0:
                continue
            # Joint j of the crop is joint flip_index[j] of the image when mirrored.
            src = COCO17.flip_index[j] if params.flipped else j
            b, g, r = colors[src]
            assert np.abs(rgb[int(round(y)), int(round(x))].astype(int) - (r, g, b)).max() <= 12, \
                (i, j, params)
            # The target's peak is at the joint, at 1/4 resolution.
            hm = item["target"][j].numpy()
            py, px = np.unravel_index(hm.argmax(), hm.shape)
            assert abs(px - x / 4) <= 0.5 + 1e-6 and abs(py - y / 4) <= 0.5 + 1e-6
    assert 5 < flips < 35


def test_same_seed_same_sample_different_epoch_different(tmp_path):
    _dotted_set(tmp_path)
    cfg = load_config(None, [f"data.train.images={tmp_path}",
                             f"data.train.ann={tmp_path / 'ann.json'}"])
    coco = load_coco(cfg.data.train, cfg.data, "train", quiet=True)
    a = TopDownDataset(coco.records, coco.info, cfg.data, train=True, seed=3)
    b = TopDownDataset(coco.records, coco.info, cfg.data, train=True, seed=3)
    assert np.array_equal(a[0]["image"], b[0]["image"])
    b.set_epoch(1)
    assert not np.array_equal(a[0]["image"], b[0]["image"])


def test_eval_targets_decode_back_to_annotations(coco_mini):
    cfg = load_config(None, [f"data.val.images={coco_mini['images']}",
                             f"data.val.ann={coco_mini['ann']}"])
    coco = load_coco(cfg.data.val, cfg.data, "val", quiet=True)
    ds = TopDownDataset(coco.records, coco.info, cfg.data, train=False)
    for i in range(0, len(ds), 7):
        item = ds[i]
        coords, _ = ds.codec.decode(item["target"].numpy()[None])
        img_xy = ds.codec.heatmap_to_image(coords, item["center"].numpy()[None],
                                           item["scale"].numpy()[None])[0]
        rec = ds.records[i]
        ok = item["target_weight"].numpy() > 0
        # Quantisation to the heatmap grid: at most half a heatmap pixel per axis.
        px = rec.scale[0] * 200 / ds.codec.heatmap_w
        assert np.abs(img_xy[ok] - rec.joints[ok]).max() <= 0.5 * px + 1e-3
