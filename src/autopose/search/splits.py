"""The search's data splits (SPEC section 3): weight half, arch half, reward slice.

The split is by image, so that no person of a reward image is ever trained on, and it is a
pure function of the seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autopose.data.records import PersonRecord
from autopose.io import write_json


@dataclass
class SearchSplits:
    weight: list[PersonRecord]
    arch: list[PersonRecord]
    reward: list[PersonRecord]
    reward_image_ids: list[int]


def split_records(records: list[PersonRecord], reward_fraction: float, seed: int,
                  hold_out_reward: bool = True) -> SearchSplits:
    """Shuffle images by ``seed``; the first ``reward_fraction`` of them (at least one) give
    the reward slice, the rest alternate into the weight and the arch halves.

    With ``hold_out_reward`` False (reward on data.val) every image trains.
    """
    image_ids = sorted({r.image_id for r in records})
    order = np.random.default_rng([seed, 7]).permutation(len(image_ids))
    shuffled = [image_ids[i] for i in order]
    n_reward = max(1, math.ceil(reward_fraction * len(shuffled))) if hold_out_reward else 0
    reward_ids = set(shuffled[:n_reward])
    rest = shuffled[n_reward:]
    weight_ids, arch_ids = set(rest[0::2]), set(rest[1::2])
    return SearchSplits(
        weight=[r for r in records if r.image_id in weight_ids],
        arch=[r for r in records if r.image_id in arch_ids],
        reward=[r for r in records if r.image_id in reward_ids],
        reward_image_ids=sorted(reward_ids))


def write_subset_annotations(ann_file: str | Path, image_ids: list[int], out: Path) -> Path:
    """A COCO annotation file with only ``image_ids``: COCOeval counts every ground-truth
    person of the file, so the reward's file must hold exactly the reward images."""
    doc = json.loads(Path(ann_file).read_text())
    keep = set(image_ids)
    doc["images"] = [im for im in doc["images"] if im["id"] in keep]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in keep]
    return write_json(out, doc, indent=None)
