import numpy as np
import pytest

from autopose.data.codec import HeatmapCodec, instance_scores
from autopose.data.keypoints import COCO17


def test_encode_peak_window_and_weights():
    codec = HeatmapCodec((256, 192), stride=4, sigma=2)
    joints = np.array([[41.0, 83.0], [-100.0, 10.0], [500.0, 10.0]])
    target, weight = codec.encode(joints, np.array([1, 1, 0]))
    assert target.shape == (3, 64, 48)
    # Peak 1 at the integer-rounded location (41/4 + 0.5 -> 10, 83/4 + 0.5 -> 21).
    assert target[0, 21, 10] == pytest.approx(1.0)
    assert target[0].max() == pytest.approx(1.0)
    assert np.count_nonzero(target[0]) == 13 * 13  # radius 3 sigma
    assert weight.tolist() == [1, 0, 0]  # window outside the map; not labelled
    assert target[1].max() == 0 and target[2].max() == 0


def test_decode_recovers_encoded_joints_and_quarter_offset():
    codec = HeatmapCodec((256, 192), stride=4, sigma=2)
    rng = np.random.default_rng(0)
    joints = rng.uniform(8, 180, size=(17, 2))
    target, _ = codec.encode(joints, np.ones(17))
    coords, maxvals = codec.decode(target[None])
    assert np.allclose(maxvals, 1)
    assert np.abs(coords[0] - np.floor(joints / 4 + 0.5)).max() == 0  # symmetric peak: no offset
    hm = target[None, :1].copy()
    y, x = np.unravel_index(hm[0, 0].argmax(), hm.shape[2:])
    hm[0, 0, y, x + 1] += 0.1  # right neighbour higher -> +0.25 in x
    coords, _ = codec.decode(hm)
    assert coords[0, 0, 0] == x + 0.25 and coords[0, 0, 1] == y


def test_flip_back_undoes_mirroring():
    codec = HeatmapCodec((256, 192), stride=4, sigma=2)
    rng = np.random.default_rng(1)
    hm = rng.random((2, 17, 64, 48)).astype(np.float32)
    mirrored = hm[:, COCO17.flip_index, :, ::-1]
    assert np.array_equal(codec.flip_back(mirrored, COCO17.flip_index, shift=False), hm)
    shifted = codec.flip_back(mirrored, COCO17.flip_index, shift=True)
    assert np.array_equal(shifted[..., 1:], hm[..., :-1])


def test_instance_scores():
    maxvals = np.array([[0.9, 0.1, 0.5], [0.1, 0.1, 0.1]])
    s = instance_scores(maxvals, np.array([0.5, 1.0]), 0.2)
    assert s[0] == pytest.approx(0.7 * 0.5) and s[1] == 0
