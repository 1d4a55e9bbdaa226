"""Heatmap codec: Gaussian targets in, keypoint coordinates and scores out.

Two codecs, named by ``data.codec``:

``standard``
    HRNet's reference code number for number: unnormalised Gaussians with peak 1 at the
    integer-rounded location, a window of radius 3 sigma, target weight 0 when that window
    falls outside the map; argmax decoding with a quarter-pixel step toward the higher
    neighbour.
``dark``
    DARK (Zhang et al., "Distribution-Aware Coordinate Representation for Human Pose
    Estimation", CVPR 2020), as mmpose's ``MSRAHeatmap(unbiased=True)``: the Gaussian is
    centred on the joint's sub-pixel location (unbiased encoding), and decoding refines the
    argmax by one Newton step on the log of the heatmap, smoothed first by a Gaussian blur
    of ``blur_kernel`` pixels that keeps each map's maximum. The standard codec rounds each
    joint to the heatmap grid, an error of up to half a heatmap pixel (2 input pixels at
    stride 4) that costs most at low input resolutions.

Both share the flip test: the flipped-back heatmap shifted by one pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from autopose.data.transforms import affine_points, get_affine_transform
from autopose.errors import UserError

# data.codec -> whether the codec is DARK's (unbiased encoding, distribution-aware decoding)
CODECS: dict[str, bool] = {"standard": False, "dark": True}


class HeatmapCodec:
    """Encode and decode keypoints for an input of ``input_size = (H, W)``.

    Heatmaps are ``(K, H / stride, W / stride)``; joint coordinates given to ``encode`` are in
    input-crop pixels, those returned by ``decode`` in heatmap pixels.
    """

    def __init__(self, input_size: tuple[int, int], stride: int = 4, sigma: float = 2.0,
                 unbiased: bool = False, blur_kernel: int = 11):
        self.input_h, self.input_w = int(input_size[0]), int(input_size[1])
        self.stride = stride
        self.unbiased = unbiased
        self.blur_kernel = blur_kernel
        self.heatmap_h, self.heatmap_w = self.input_h // stride, self.input_w // stride
        self.sigma = float(sigma)
        self.radius = int(self.sigma * 3)
        size = 2 * self.radius + 1
        ax = np.arange(size, dtype=np.float32) - self.radius
        self._kernel = np.exp(-(ax[None, :] ** 2 + ax[:, None] ** 2) / (2 * self.sigma ** 2))

    def encode(self, joints: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """joints ``(K, 2)`` in crop pixels, vis ``(K,)`` -> heatmaps ``(K, h, w)``, weights ``(K,)``."""
        if self.unbiased:
            return self._encode_unbiased(joints, vis)
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

    def _encode_unbiased(self, joints: np.ndarray, vis: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
        """DARK's targets: a Gaussian over the whole map, centred on the sub-pixel joint.

        Target weights as in the standard codec (mmpose's window test, which truncates
        ``mu -/+ radius`` toward zero where HRNet rounds).
        """
        h, w, r = self.heatmap_h, self.heatmap_w, self.radius
        mu = np.asarray(joints, np.float32) / self.stride  # (K, 2) in heatmap pixels
        lo = (mu - r).astype(np.int64)
        hi = (mu + r + 1).astype(np.int64)
        outside = (lo[:, 0] >= w) | (lo[:, 1] >= h) | (hi[:, 0] < 0) | (hi[:, 1] < 0)
        weight = ((np.asarray(vis) > 0) & ~outside).astype(np.float32)
        xs = np.arange(w, dtype=np.float32)[None, None, :]
        ys = np.arange(h, dtype=np.float32)[None, :, None]
        d2 = (xs - mu[:, 0, None, None]) ** 2 + (ys - mu[:, 1, None, None]) ** 2
        target = np.exp(-d2 / (2 * self.sigma ** 2)) * weight[:, None, None]
        return target.astype(np.float32), weight

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
        """heatmaps ``(N, K, h, w)`` -> coords ``(N, K, 2)`` in heatmap pixels, scores ``(N, K)``.

        Standard codec: argmax plus a quarter-pixel step toward the higher neighbour. DARK:
        argmax refined by :meth:`dark_refine`. The scores are the heatmap maxima either way.
        """
        coords, maxvals = self.argmax(heatmaps)
        if self.unbiased:
            return self.dark_refine(heatmaps, coords), maxvals
        n, k, h, w = heatmaps.shape
        px = coords[..., 0].astype(np.int64)
        py = coords[..., 1].astype(np.int64)
        # HRNet's get_final_preds: ``1 < px < W-1 and 1 < py < H-1`` (not ``0 <``): an
        # argmax in column or row 1 keeps its integer position there, so here too.
        inside = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
        ni, ki = np.nonzero(inside)
        x, y = px[ni, ki], py[ni, ki]
        hm = heatmaps[ni, ki]
        ar = np.arange(len(ni))
        dx = hm[ar, y, x + 1] - hm[ar, y, x - 1]
        dy = hm[ar, y + 1, x] - hm[ar, y - 1, x]
        coords[ni, ki, 0] += np.sign(dx) * 0.25
        coords[ni, ki, 1] += np.sign(dy) * 0.25
        return coords, maxvals

    def blur(self, heatmaps: np.ndarray) -> np.ndarray:
        """Gaussian blur of each ``(h, w)`` map of ``(N, K, h, w)``, zero outside the map,
        rescaled to keep the map's maximum (DARK's modulation)."""
        n, k, h, w = heatmaps.shape
        maps = np.ascontiguousarray(heatmaps, dtype=np.float32).reshape(n * k, h, w)
        size = (self.blur_kernel, self.blur_kernel)
        out = np.stack([cv2.GaussianBlur(m, size, 0, borderType=cv2.BORDER_CONSTANT)
                        for m in maps]) if len(maps) else maps.copy()
        peak, blurred_peak = maps.max(axis=(1, 2)), out.max(axis=(1, 2))
        ratio = np.divide(peak, blurred_peak, out=np.ones_like(peak), where=blurred_peak > 0)
        return (out * ratio[:, None, None]).reshape(n, k, h, w)

    def dark_refine(self, heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """DARK's Taylor step: ``coords - H^-1 g`` of the blurred log-heatmap at the argmax.

        heatmaps ``(N, K, h, w)``, integer argmax ``coords`` ``(N, K, 2)`` -> refined coords.
        Joints within two pixels of the border, or with a singular Hessian, keep the argmax.
        """
        logs = np.log(np.maximum(self.blur(heatmaps), 1e-10))
        n, k, h, w = heatmaps.shape
        out = coords.astype(np.float32).copy()
        px = coords[..., 0].astype(np.int64)
        py = coords[..., 1].astype(np.int64)
        inside = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
        ni, ki = np.nonzero(inside)
        x, y, m = px[ni, ki], py[ni, ki], logs[ni, ki]
        ar = np.arange(len(ni))

        def at(dy: int, dx: int) -> np.ndarray:
            return m[ar, y + dy, x + dx].astype(np.float64)

        gx = 0.5 * (at(0, 1) - at(0, -1))
        gy = 0.5 * (at(1, 0) - at(-1, 0))
        hxx = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
        hyy = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
        hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
        det = hxx * hyy - hxy ** 2
        ok = det != 0
        safe = np.where(ok, det, 1.0)
        # -H^-1 g with H^-1 = [[hyy, -hxy], [-hxy, hxx]] / det
        out[ni, ki, 0] += np.where(ok, -(hyy * gx - hxy * gy) / safe, 0.0).astype(np.float32)
        out[ni, ki, 1] += np.where(ok, -(hxx * gy - hxy * gx) / safe, 0.0).astype(np.float32)
        return out

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


def codec_for(input_size: tuple[int, int] | list[int], stride: int, sigma: float,
              codec: str, blur_kernel: int) -> HeatmapCodec:
    """The codec that ``data.codec`` names (a config error names the field)."""
    if codec not in CODECS:
        raise UserError(f"config: data.codec: expected one of {', '.join(CODECS)}, got {codec!r}")
    if blur_kernel < 1 or blur_kernel % 2 == 0:
        raise UserError(f"config: data.blur_kernel: must be a positive odd number, got {blur_kernel}")
    return HeatmapCodec(tuple(input_size), stride, sigma, unbiased=CODECS[codec],
                        blur_kernel=blur_kernel)


def instance_scores(maxvals: np.ndarray, box_scores: np.ndarray, in_vis_thre: float) -> np.ndarray:
    """Mean of the joint scores above ``in_vis_thre`` times the box score (HRNet's rescoring).

    maxvals ``(N, K)``, box_scores ``(N,)`` -> ``(N,)``; 0 when no joint passes.
    """
    mask = maxvals > in_vis_thre
    count = mask.sum(axis=1)
    total = (maxvals * mask).sum(axis=1)
    kpt = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return kpt * box_scores
