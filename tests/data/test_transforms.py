import numpy as np
import pytest

from autopose.config import AugmentConfig
from autopose.data.keypoints import COCO17, MPII16
from autopose.data.transforms import (CropParams, affine_points, box_to_center_scale,
                                      crop_matrices, fliplr_joints, get_affine_transform,
                                      sample_augmentation, warp)


def test_box_to_center_scale_forces_aspect_and_pads():
    c, s = box_to_center_scale([10, 20, 100, 100], aspect_ratio=0.75)
    assert np.allclose(c, [60, 70])
    # width 100 < 0.75 * 100 is false -> height grows to 100 / 0.75
    assert np.allclose(s, np.array([100, 100 / 0.75]) / 200 * 1.25)
    assert s[0] / s[1] == pytest.approx(0.75)


@pytest.mark.parametrize("rot", [0.0, 17.0, -80.0])
def test_crop_then_inverse_returns_keypoints(rot):
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 600, size=(17, 2))
    center, scale = np.array([300.0, 250.0]), np.array([1.5, 2.0])
    fwd = get_affine_transform(center, scale, rot, (192, 256))
    inv = get_affine_transform(center, scale, rot, (192, 256), inv=True)
    back = affine_points(affine_points(pts, fwd), inv)
    assert np.abs(back - pts).max() < 0.5
    assert np.abs(back - pts).max() < 1e-3


def test_box_center_maps_to_crop_middle():
    mat = get_affine_transform(np.array([100.0, 80.0]), np.array([1.0, 4 / 3]), 0, (192, 256))
    assert np.allclose(affine_points(np.array([[100.0, 80.0]]), mat), [[96, 128]])


@pytest.mark.parametrize("info", [COCO17, MPII16])
def test_flip_twice_is_identity_and_pairs_swap(info):
    rng = np.random.default_rng(1)
    joints = rng.uniform(0, 500, size=(info.num_joints, 2))
    vis = (rng.random(info.num_joints) > 0.3).astype(np.float32)
    j1, v1 = fliplr_joints(joints, vis, 640, info.flip_index)
    j2, v2 = fliplr_joints(j1, v1, 640, info.flip_index)
    assert np.allclose(j2, joints) and np.array_equal(v2, vis)
    for a, b in info.flip_pairs:
        assert info.names[a].replace("left", "right") == info.names[b] or \
            info.names[a].replace("right", "left") == info.names[b]
        assert j1[a, 0] == pytest.approx(639 - joints[b, 0])


def test_flip_folded_into_matrix_equals_flipping_the_image():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    params = CropParams(np.array([70.0, 60.0]), np.array([0.5, 0.5]), 10.0, True)
    image_to_crop, _ = crop_matrices(params, 160, (64, 64))
    folded = warp(image, image_to_crop, (64, 64))
    mirrored = np.ascontiguousarray(image[:, ::-1])
    direct = warp(mirrored, get_affine_transform(params.center, params.scale, 10.0, (64, 64)),
                  (64, 64))
    assert np.abs(folded.astype(int) - direct.astype(int)).max() <= 1


def test_augmentation_ranges():
    aug = AugmentConfig()
    joints = np.random.default_rng(3).uniform(100, 300, size=(17, 2))
    vis = np.ones(17, np.float32)
    c, s = np.array([200.0, 200.0]), np.array([1.0, 4 / 3])
    scales, rots, flips = [], [], 0
    for i in range(400):
        p, _, _ = sample_augmentation(c, s, joints, vis, 640, COCO17,
                                      AugmentConfig(half_body_prob=0.0), 0.75,
                                      np.random.default_rng(i))
        scales.append(p.scale[0] / s[0])
        rots.append(p.rotation)
        flips += p.flipped
    assert 1 - aug.scale_factor - 1e-6 <= min(scales) and max(scales) <= 1 + aug.scale_factor + 1e-6
    assert max(abs(r) for r in rots) <= 2 * aug.rotation_factor
    assert 0.3 < np.mean([r != 0 for r in rots]) < 0.9  # rotation with probability 0.6
    assert 150 < flips < 250
