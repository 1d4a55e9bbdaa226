"""The top-down dataset: one person record in, one normalised crop and its targets out."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from autopose.config import DataConfig
from autopose.data.codec import codec_for
from autopose.data.keypoints import KeypointInfo
from autopose.data.records import PersonRecord, read_image
from autopose.data.transforms import (CropParams, affine_points, crop_matrices,
                                      sample_augmentation, to_chw_rgb, warp)


class TopDownDataset(Dataset):
    """Crops person boxes and encodes their heatmaps (HRNet's JointsDataset).

    Each item is a dict: ``image`` ``(3, H, W)`` uint8 RGB (normalised later, in batches,
    by :func:`~autopose.data.transforms.normalize_batch`), ``target`` ``(K, H/4, W/4)``,
    ``target_weight`` ``(K,)``, ``joints`` ``(K, 2)`` in crop pixels, ``vis`` ``(K,)``,
    ``center`` ``(2,)``, ``scale`` ``(2,)``, ``box_score``, ``image_id``, ``index``.
    Training augmentation draws from a generator seeded by (seed, epoch, index), so a
    sample does not depend on which worker loads it or on a resume.
    """

    def __init__(self, records: list[PersonRecord], info: KeypointInfo, data: DataConfig,
                 train: bool, seed: int = 0):
        self.records = records
        self.info = info
        self.data = data
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.output_size = (data.input_size[1], data.input_size[0])  # (W, H) for OpenCV
        self.codec = codec_for(data.input_size, data.heatmap_stride, data.sigma, data.codec,
                               data.blur_kernel)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def crop_params(self, rec: PersonRecord, image_width: int,
                    index: int) -> tuple[CropParams, np.ndarray, np.ndarray]:
        if not self.train:
            return CropParams(rec.center, rec.scale, 0.0, False), rec.joints, rec.vis
        rng = np.random.default_rng([self.seed, self.epoch, index])
        h, w = self.data.input_size
        return sample_augmentation(rec.center, rec.scale, rec.joints, rec.vis, image_width,
                                   self.info, self.data.aug, w / h, rng)

    def load_image(self, rec: PersonRecord) -> np.ndarray:
        """The record's image, uint8 BGR ``(H, W, 3)`` (video frames in memory: a subclass)."""
        return read_image(rec.image_path, rec.image_id)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        image = self.load_image(rec)
        params, joints, vis = self.crop_params(rec, image.shape[1], index)
        image_to_crop, frame_to_crop = crop_matrices(params, image.shape[1], self.output_size)
        crop = warp(image, image_to_crop, self.output_size)
        joints_crop = affine_points(joints, frame_to_crop).astype(np.float32)
        target, weight = self.codec.encode(joints_crop, vis)
        return {
            "image": torch.from_numpy(to_chw_rgb(crop)),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight),
            "joints": torch.from_numpy(joints_crop),
            "vis": torch.from_numpy(vis.astype(np.float32)),
            "center": torch.from_numpy(np.asarray(rec.center, np.float32)),
            "scale": torch.from_numpy(np.asarray(rec.scale, np.float32)),
            "box_score": torch.tensor(rec.box_score, dtype=torch.float32),
            "image_id": torch.tensor(rec.image_id, dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
        }
