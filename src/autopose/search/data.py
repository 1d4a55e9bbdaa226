"""The search's data (SPEC section 3): the weight and arch halves of the training set, their
samplers, the iterations a period has, and the reward set."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from autopose.config import Config, DataConfig
from autopose.data.coco import load_coco
from autopose.data.keypoints import KeypointInfo
from autopose.data.sampler import ResumableSampler
from autopose.data.topdown import TopDownDataset
from autopose.engine import distributed as ddp
from autopose.evaluation.pipeline import EvalSet, build_eval_set
from autopose.errors import UserError
from autopose.search.splits import split_records, write_subset_annotations


@dataclass
class SearchData:
    """What ``build_search_data`` builds; ``reward_cfg`` is the config the reward reads (the
    search's input size in place of the data's)."""

    info: KeypointInfo
    weight_set: TopDownDataset
    arch_set: TopDownDataset
    weight_sampler: ResumableSampler
    arch_sampler: ResumableSampler
    iters_per_epoch: int
    reward_set: EvalSet
    reward_cfg: Config


def search_data_config(cfg: Config) -> DataConfig:
    """``cfg.data`` at the search's input size and with its augmentation
    (``search.input_size`` and ``search.aug``, else the data's)."""
    d = cfg.data
    size = cfg.search.input_size or d.input_size
    return dataclasses.replace(d, input_size=list(size), aug=cfg.search.aug or d.aug)


def build_search_data(cfg: Config, out: Path, dist: ddp.DistInfo) -> SearchData:
    """Split ``cfg.data.train`` by image into the weight half, the arch half and (with
    ``search.reward_split: train``) the reward slice, whose annotation file is written to
    ``out``; otherwise the reward set is ``data.val``. ``cfg`` has its data resolved."""
    s = cfg.search
    data = search_data_config(cfg)
    train = load_coco(cfg.data.train, data, "train")
    splits = split_records(train.records, s.reward_fraction, cfg.seed,
                           hold_out_reward=s.reward_split == "train")
    if not splits.weight or not splits.arch:
        raise UserError(f"{cfg.data.train.ann}: too few images to split into weight and "
                        "arch halves")
    weight_set = TopDownDataset(splits.weight, train.info, data, train=True, seed=cfg.seed)
    arch_set = TopDownDataset(splits.arch, train.info, data, train=True, seed=cfg.seed + 1)
    rank, world = dist.rank, dist.world_size
    weight_sampler = ResumableSampler(weight_set, world, rank, cfg.seed)
    arch_sampler = ResumableSampler(arch_set, world, rank, cfg.seed + 1)
    per_rank = min(weight_sampler.num_samples, arch_sampler.num_samples)
    iters_per_epoch = per_rank // s.batch_size
    if s.iters_per_epoch > 0:
        iters_per_epoch = min(iters_per_epoch, s.iters_per_epoch)
    if iters_per_epoch == 0:
        raise UserError(f"config: search.batch_size: {s.batch_size} is more than the "
                        f"{per_rank} persons of a half (per process)")

    reward_cfg = dataclasses.replace(cfg, data=data)
    if s.reward_batch_size > 0:
        reward_cfg = dataclasses.replace(
            reward_cfg, test=dataclasses.replace(cfg.test, batch_size=s.reward_batch_size))
    if s.reward_split == "train":
        ann = out / "search_val_ann.json"
        if dist.is_main:
            write_subset_annotations(cfg.data.train.ann, splits.reward_image_ids, ann)
        ddp.barrier()
        reward_set = EvalSet(TopDownDataset(splits.reward, train.info, data, train=False),
                             train.info, ann, "coco")
    else:
        reward_set = build_eval_set(reward_cfg)
    return SearchData(train.info, weight_set, arch_set, weight_sampler, arch_sampler,
                      iters_per_epoch, reward_set, reward_cfg)
