"""Top-down geometry, in the exact conventions of HRNet's reference code.

A person box becomes a center and a scale (box size in units of 200 px, aspect ratio
forced to the network input's, padded by 1.25); the crop is one affine warp (OpenCV,
bilinear) that maps the box center to the middle of the input. Flip, scale and rotation
augmentation, and the half-body crop, all act on center, scale and the affine matrix, so an
image is resampled exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from autopose.config import AugmentConfig
from autopose.data.keypoints import KeypointInfo

PIXEL_STD = 200.0
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def box_to_center_scale(box: np.ndarray | list[float], aspect_ratio: float,
                        padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """``[x, y, w, h]`` -> (center (2,), scale (2,)) with ``w / h == aspect_ratio``.

    ``aspect_ratio`` is input width over input height; scale is in units of 200 px.
    """
    x, y, w, h = (float(v) for v in box)
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    return center, fitted_scale(w, h, aspect_ratio, padding)


def fitted_scale(w: float, h: float, aspect_ratio: float, padding: float) -> np.ndarray:
    """Scale (2,), in units of 200 px, of a ``w`` x ``h`` box grown along one side to
    ``aspect_ratio`` (width over height), then padded."""
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return np.array([w / PIXEL_STD, h / PIXEL_STD], dtype=np.float32) * padding


def _rotate(pt: np.ndarray, rot_rad: float) -> np.ndarray:
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return np.array([pt[0] * cs - pt[1] * sn, pt[0] * sn + pt[1] * cs], dtype=np.float32)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def get_affine_transform(center: np.ndarray, scale: np.ndarray, rot: float,
                         output_size: tuple[int, int], inv: bool = False) -> np.ndarray:
    """The 2x3 matrix mapping the box (center, scale, rotated by ``rot`` degrees) onto an
    output of ``output_size = (width, height)``; ``inv`` gives the way back.

    As in HRNet: the box center goes to ``(W / 2, H / 2)`` and the box width to ``W``.
    """
    src_w = scale[0] * PIXEL_STD
    dst_w, dst_h = output_size
    src_dir = _rotate(np.array([0, src_w * -0.5], np.float32), np.pi * rot / 180)
    dst_dir = np.array([0, dst_w * -0.5], np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def affine_points(pts: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to points ``(..., 2)``."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ mat[:, :2].T + mat[:, 2]


def flip_matrix(image_width: int) -> np.ndarray:
    """3x3 mirror ``x -> W - 1 - x`` (HRNet's pixel-index flip)."""
    return np.array([[-1, 0, image_width - 1], [0, 1, 0], [0, 0, 1]], dtype=np.float64)


def fliplr_joints(joints: np.ndarray, vis: np.ndarray, image_width: int,
                  flip_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror joints ``(K, 2)`` horizontally and swap left and right."""
    out = joints.copy()
    out[:, 0] = image_width - 1 - out[:, 0]
    return out[flip_index], vis[flip_index]


def half_body_center_scale(joints: np.ndarray, vis: np.ndarray, info: KeypointInfo,
                           aspect_ratio: float, box_scale: float,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """A box around the upper or the lower body (HRNet's half-body augmentation), or None."""
    upper = [j for j in info.upper_body if vis[j] > 0]
    lower = [j for j in info.lower_body if vis[j] > 0]
    # A standard-normal draw below 0.5 (about 69 %), as in the reference, not a uniform one.
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    pts = joints[chosen]
    center = pts.mean(axis=0).astype(np.float32)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return center, fitted_scale(hi[0] - lo[0], hi[1] - lo[1], aspect_ratio, box_scale)


@dataclass
class CropParams:
    """Where a crop comes from: center and scale in the (possibly mirrored) image, rotation."""

    center: np.ndarray
    scale: np.ndarray
    rotation: float
    flipped: bool


def sample_augmentation(center: np.ndarray, scale: np.ndarray, joints: np.ndarray,
                        vis: np.ndarray, image_width: int, info: KeypointInfo,
                        aug: AugmentConfig, aspect_ratio: float,
                        rng: np.random.Generator) -> tuple[CropParams, np.ndarray, np.ndarray]:
    """Draw one training augmentation (order and distributions as HRNet's COCO loader).

    Returns the crop parameters and the joints / visibility in the mirrored image frame.
    """
    c, s = center.copy(), scale.copy()
    if (np.sum(vis > 0) > aug.half_body_min_joints and info.upper_body
            and rng.random() < aug.half_body_prob):
        hb = half_body_center_scale(joints, vis, info, aspect_ratio, aug.half_body_scale, rng)
        if hb is not None:
            c, s = hb
    sf, rf = aug.scale_factor, aug.rotation_factor
    s = s * float(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
    r = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf)) \
        if rng.random() <= aug.rotation_prob else 0.0
    flipped = bool(aug.flip and rng.random() <= aug.flip_prob)
    if flipped:
        joints, vis = fliplr_joints(joints, vis, image_width, info.flip_index)
        c = c.copy()
        c[0] = image_width - 1 - c[0]
    return CropParams(c, s, r, flipped), joints, vis


def crop_matrices(params: CropParams, image_width: int,
                  output_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """2x3 matrices to the crop from the original image and from the mirrored frame.

    Mirroring is folded into the first so that the image is resampled once and never
    copied; joints, already mirrored by :func:`sample_augmentation`, take the second.
    """
    frame = get_affine_transform(params.center, params.scale, params.rotation, output_size)
    if not params.flipped:
        return frame, frame
    return (np.vstack([frame, [0, 0, 1]]) @ flip_matrix(image_width))[:2], frame


def warp(image: np.ndarray, mat: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Affine crop with bilinear interpolation (``output_size = (width, height)``)."""
    return cv2.warpAffine(image, mat, output_size, flags=cv2.INTER_LINEAR)


def to_chw_rgb(crop_bgr: np.ndarray) -> np.ndarray:
    """uint8 BGR ``(H, W, 3)`` -> uint8 RGB ``(3, H, W)``.

    Crops leave the data workers as uint8 (a quarter of the float bytes) and are
    normalised in batches on the compute device by :func:`normalize_batch`.
    """
    return np.ascontiguousarray(crop_bgr[:, :, ::-1].transpose(2, 0, 1))


def normalize_batch(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 RGB ``(N, 3, H, W)`` -> float32, scaled to [0, 1], ImageNet mean and std; in the
    channels-last memory format when the network's weights are (same values either way)."""
    mean = torch.as_tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    out = (images.float() * (1.0 / 255.0) - mean) / std
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out
