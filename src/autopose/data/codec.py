"""Heatmap codec: Gaussian targets in, keypoint coordinates and scores out.

Encoding and decoding follow HRNet's reference code number for number: unnormalised
Gaussians with peak 1 at the integer-rounded location, a window of radius 3 sigma, target
weight 0 when that window falls outside the map; argmax decoding with a quarter-pixel step
toward the higher neighbour; flip test with the flipped-back heatmap shifted by one pixel.
"""

from __future__ import annotations

import numpy as np

from autopose.data.transforms import affine_points, get_affine_transform


class HeatmapCodec:
    """Encode and decode keypoints for an input of ``input_size = (H, W)``.

    Heatmaps are ``(K, H / stride, W / stride)``; joint coordinates given to ``encode`` are in
    input-crop pixels, those returned by ``decode`` in heatmap pixels.
    """

    def __init__(self, input_size: tuple[int, int], stride: int = 4, sigma: float = 2.0):
        self.input_h, self.input_w = int(input_size[0]), int(input_size[1])
        self.stride = stride
        self.heatmap_h, self.heatmap_w = self.input_h // stride, self.input_w // stride
        self.sigma = float(sigma)
        self.radius = int(self.sigma * 3)
        size = 2 * self.radius + 1
        ax = np.arange(size, dtype=np.float32) - self.radius
        self._kernel = np.exp(-(ax[None, :] ** 2 + ax[:, None] ** 2) / (2 * self.sigma ** 2))

    def encode(self, joints: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """joints ``(K, 2)`` in crop pixels, vis ``(K,)`` -> heatmaps ``(K, h, w)``, weights ``(K,)``."""
        k = joints.shape[0]
        h, w, r = self.heatmap_h, self.heatmap_w, self.radius
        target = np.zeros((k, h, w), dtype=np.float32)
        weight = (np.asarray(vis) > 0).astype(np.float32)
        for j in range(k):
            if weight[j] == 0:
                continue
            mu_x = int(joints[j, 0] / self.stride + 0.5)
            mu_y = int(joints[j, 1] / self.stride + 0.5)
            x0, y0, x1, y1 = mu_x - r, mu_y - r, mu_x + r + 1, mu_y + r + 1
            if x0 >= w or y0 >= h or x1 < 0 or y1 < 0:
                weight[j] = 0
                continue
            gx0, gx1 = max(0, -x0), min(x1, w) - x0
            gy0, gy1 = max(0, -y0), min(y1, h) - y0
            target[j, max(0, y0):min(y1, h), max(0, x0):min(x1, w)] = \
                self._kernel[gy0:gy1, gx0:gx1]
        return target, weight

    @staticmethod
    def argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """heatmaps ``(N, K, h, w)`` -> integer peak coords ``(N, K, 2)`` (x, y), values ``(N, K)``.

        A joint whose maximum is not positive gets coordinates (0, 0), as in the reference.
        """
        n, k, h, w = heatmaps.shape
        flat = heatmaps.reshape(n, k, -1)
        idx = flat.argmax(axis=2)
        maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
        coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
        coords *= (maxvals > 0)[..., None]
        return coords, maxvals.astype(np.float32)

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Argmax plus a quarter-pixel step toward the higher neighbour, in heatmap pixels."""
        coords, maxvals = self.argmax(heatmaps)
        n, k, h, w = heatmaps.shape
        px = coords[..., 0].astype(np.int64)
        py = coords[..., 1].astype(np.int64)
        inside = (px > 0) & (px < w - 1) & (py > 0) & (py < h - 1)
        ni, ki = np.nonzero(inside)
        x, y = px[ni, ki], py[ni, ki]
        hm = heatmaps[ni, ki]
        ar = np.arange(len(ni))
        dx = hm[ar, y, x + 1] - hm[ar, y, x - 1]
        dy = hm[ar, y + 1, x] - hm[ar, y - 1, x]
        coords[ni, ki, 0] += np.sign(dx) * 0.25
        coords[ni, ki, 1] += np.sign(dy) * 0.25
        return coords, maxvals

    def heatmap_to_image(self, coords: np.ndarray, center: np.ndarray,
                         scale: np.ndarray) -> np.ndarray:
        """Heatmap coords ``(N, K, 2)`` -> image coords, through the inverse crop transform."""
        out = np.empty_like(coords, dtype=np.float64)
        for i in range(coords.shape[0]):
            inv = get_affine_transform(center[i], scale[i], 0,
                                       (self.heatmap_w, self.heatmap_h), inv=True)
            out[i] = affine_points(coords[i], inv)
        return out

    @staticmethod
    def flip_back(heatmaps: np.ndarray, flip_index: np.ndarray, shift: bool = True) -> np.ndarray:
        """Heatmaps of a mirrored input ``(N, K, h, w)`` -> heatmaps in the original frame.

        Mirrors the width axis, swaps left and right joints, and (``shift``) moves the map one
        pixel right: mirroring pixel indices ``x -> W-1-x`` at input resolution leaves the
        flipped-back map 0.75 heatmap pixels to the left, which HRNet corrects this way.
        """
        out = heatmaps[:, flip_index, :, ::-1].copy()
        if shift:
            out[..., 1:] = out[..., :-1].copy()
        return out


def instance_scores(maxvals: np.ndarray, box_scores: np.ndarray, in_vis_thre: float) -> np.ndarray:
    """Mean of the joint scores above ``in_vis_thre`` times the box score (HRNet's rescoring).

    maxvals ``(N, K)``, box_scores ``(N,)`` -> ``(N,)``; 0 when no joint passes.
    """
    mask = maxvals > in_vis_thre
    count = mask.sum(axis=1)
    total = (maxvals * mask).sum(axis=1)
    kpt = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return kpt * box_scores
