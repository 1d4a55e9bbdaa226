"""Where a split's files are: the paths in the config, or the built-in synthetic set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from autopose.config import Config
from autopose.data.formats import FORMATS
from autopose.data.synthetic import ensure_synthetic


def synthetic_split(root: Path, split: str) -> tuple[str, str]:
    """(images folder, annotation file) of one split of a generated synthetic set."""
    return str(root / "images" / split), str(root / f"person_keypoints_{split}.json")


def resolve_data(cfg: Config) -> Config:
    """Fill missing COCO-format paths with the built-in synthetic set, generating it on first use.

    A config that names its own data is returned unchanged; one that names none (the
    default) gets the synthetic set for both splits.
    """
    d = cfg.data
    # An unknown format is left for the loaders to reject (naming the field).
    fmt = FORMATS.get(d.format)
    if fmt is None or not fmt.synthetic_default or d.train.ann or d.val.ann:
        return cfg
    root = Path(ensure_synthetic(d.synthetic))
    tr_images, tr_ann = synthetic_split(root, "train")
    va_images, va_ann = synthetic_split(root, "val")
    data = dataclasses.replace(
        d,
        train=dataclasses.replace(d.train, images=tr_images, ann=tr_ann),
        val=dataclasses.replace(d.val, images=va_images, ann=va_ann))
    return dataclasses.replace(cfg, data=data)
