import numpy as np
import pytest

import cv2

from autopose.data.codec import HeatmapCodec, codec_for, instance_scores
from autopose.data.keypoints import COCO17
from autopose.errors import UserError


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


def test_unbiased_encode_centres_gaussian_on_subpixel_joint():
    codec = HeatmapCodec((256, 192), stride=4, sigma=2, unbiased=True)
    joints = np.array([[41.0, 83.0], [-100.0, 10.0], [500.0, 10.0], [20.0, 30.0]])
    target, weight = codec.encode(joints, np.array([1, 1, 1, 0]))
    assert weight.tolist() == [1, 0, 0, 0]
    assert not target[1:].any()
    ys, xs = np.mgrid[0:64, 0:48]
    want = np.exp(-((xs - 10.25) ** 2 + (ys - 20.75) ** 2) / 8)
    assert np.allclose(target[0], want, atol=1e-6)
    # The peak pixel is below 1: the centre (10.25, 20.75) is between pixels.
    assert target[0, 21, 10] == pytest.approx(np.exp(-(0.25 ** 2 + 0.25 ** 2) / 8), rel=1e-6)
    # A joint just outside the map keeps its weight while its 3-sigma window overlaps the map.
    t, w = codec.encode(np.array([[-8.0, 100.0], [-40.0, 100.0]]), np.ones(2))
    assert w.tolist() == [1, 0] and t[0].max() > 0


@pytest.mark.parametrize("sigma, kernel", [(2.0, 11), (3.0, 17)])
def test_dark_round_trip_is_subpixel_exact_where_rounding_is_not(sigma, kernel):
    rng = np.random.default_rng(2)
    joints = rng.uniform(24, 168, size=(17, 2))  # away from the border: blur sees zeros there
    dark = HeatmapCodec((256, 192), 4, sigma, unbiased=True, blur_kernel=kernel)
    standard = HeatmapCodec((256, 192), 4, sigma)
    target, _ = dark.encode(joints, np.ones(17))
    coords, maxvals = dark.decode(target[None])
    assert np.abs(coords[0] - joints / 4).max() < 0.02  # heatmap pixels
    assert np.allclose(maxvals, target.max(axis=(1, 2)))
    coords, _ = standard.decode(standard.encode(joints, np.ones(17))[0][None])
    assert np.abs(coords[0] - joints / 4).max() > 0.25  # rounding to the grid


def test_dark_blur_is_zero_padded_and_keeps_each_maximum():
    codec = HeatmapCodec((64, 48), 4, 2, unbiased=True, blur_kernel=11)
    rng = np.random.default_rng(3)
    hm = rng.random((2, 3, 16, 12)).astype(np.float32)
    out = codec.blur(hm)
    for n in range(2):
        for k in range(3):  # mmpose's gaussian_blur: pad with zeros, blur, crop, rescale
            padded = np.pad(hm[n, k], 5)
            ref = cv2.GaussianBlur(padded, (11, 11), 0)[5:-5, 5:-5]
            ref *= hm[n, k].max() / ref.max()
            assert np.allclose(out[n, k], ref, atol=1e-6)
    assert np.allclose(out.max(axis=(2, 3)), hm.max(axis=(2, 3)))


def test_dark_keeps_argmax_at_border_and_on_flat_maps():
    codec = HeatmapCodec((64, 48), 4, 2, unbiased=True)
    hm = np.zeros((1, 3, 16, 12), np.float32)
    hm[0, 0, 8, 1] = 1.0  # two pixels from the left edge: no Taylor step
    hm[0, 1] = -1.0  # nothing positive: argmax (0, 0), as in the reference
    hm[0, 2, 8, 6] = 1.0
    hm[0, 2, 8, 7] = 0.5  # right neighbour higher than left: refined to the right
    coords, maxvals = codec.decode(hm)
    assert coords[0, 0].tolist() == [1.0, 8.0]
    assert coords[0, 1].tolist() == [0.0, 0.0] and maxvals[0, 1] == -1
    assert 6.0 < coords[0, 2, 0] < 6.5 and coords[0, 2, 1] == pytest.approx(8.0)
    assert np.isfinite(coords).all()


def test_codec_for_names_the_field():
    assert codec_for([128, 96], 4, 2.0, "dark", 11).unbiased
    assert not codec_for([128, 96], 4, 2.0, "standard", 11).unbiased
    with pytest.raises(UserError, match="data.codec: expected one of standard, dark, got 'udp'"):
        codec_for([128, 96], 4, 2.0, "udp", 11)
    with pytest.raises(UserError, match="data.blur_kernel"):
        codec_for([128, 96], 4, 2.0, "dark", 10)


def _hrnet_final_preds(heatmaps: np.ndarray) -> np.ndarray:
    """HRNet's get_max_preds + the quarter-pixel step of get_final_preds, loop for loop
    (lib/core/inference.py), in heatmap pixels."""
    n, k, h, w = heatmaps.shape
    coords = np.zeros((n, k, 2))
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j]
            idx = int(hm.reshape(-1).argmax())
            x, y = float(idx % w), float(idx // w)
            if hm.reshape(-1)[idx] <= 0:
                x = y = 0.0
            px, py = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
            if 1 < px < w - 1 and 1 < py < h - 1:
                diff = np.array([hm[py][px + 1] - hm[py][px - 1], hm[py + 1][px] - hm[py - 1][px]])
                x, y = np.array([x, y]) + np.sign(diff) * 0.25
            coords[i, j] = x, y
    return coords


@pytest.mark.parametrize("x,y", [(1, 5), (5, 1), (1, 1), (2, 2), (0, 5), (10, 14), (11, 5)])
def test_quarter_step_border_is_hrnets(x, y):
    # A peak with a higher right and lower neighbour: HRNet moves it by (+0.25, +0.25) only
    # where 1 < x < W-1 and 1 < y < H-1; at x = 1 or y = 1 it keeps the integer argmax.
    h, w = 16, 12
    hm = np.zeros((1, 1, h, w), np.float32)
    hm[0, 0, y, x] = 1.0
    for dx, dy, v in ((1, 0, 0.6), (-1, 0, 0.2), (0, 1, 0.6), (0, -1, 0.2)):
        if 0 <= x + dx < w and 0 <= y + dy < h:
            hm[0, 0, y + dy, x + dx] = v
    coords, _ = HeatmapCodec((h * 4, w * 4), stride=4, sigma=2).decode(hm)
    assert coords[0, 0].tolist() == _hrnet_final_preds(hm)[0, 0].tolist()
    if x == 1 or y == 1:
        assert coords[0, 0].tolist() == [x, y]
