import dataclasses
from pathlib import Path

import pytest

from autopose.config import CONFIG_DIR, dump_config, load_config
from autopose.errors import UserError


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.lr=0.01", "data.input_size=[128,96]", "test.flip=false"])
    assert cfg.train.lr == 0.01
    assert cfg.data.input_size == [128, 96]
    assert cfg.data.heatmap_size == [32, 24]
    assert cfg.test.flip is False


def test_round_trip_through_yaml(tmp_path: Path):
    cfg = load_config(None, ["data.val.det_file=dets.json", "seed=7"])
    p = tmp_path / "c.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg


@pytest.mark.parametrize("override,needle", [
    ("train.lrr=1", "train.lrr: unknown key"),
    ("train.lr=abc", "train.lr: expected float"),
    ("data.input_size=3", "data.input_size: expected a list"),
    ("nosuch.section=1", "nosuch: unknown key"),
    ("novalue", "expected key=value"),
])
def test_bad_overrides(override, needle):
    with pytest.raises(UserError, match=needle):
        load_config(None, [override])


def test_unknown_key_in_file_names_file_and_key(tmp_path: Path):
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  formt: coco\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    assert str(p) in str(e.value) and "data.formt" in str(e.value)


def test_invalid_yaml(tmp_path: Path):
    p = tmp_path / "bad.yaml"
    p.write_text("data: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(p)


def test_shipped_configs_load():
    files = sorted(CONFIG_DIR.rglob("*.yaml"))
    assert any("coco" in str(f) for f in files) and any("mpii" in str(f) for f in files)
    for f in files:
        load_config(f)


@pytest.mark.parametrize("override,needle", [
    ("data.codec=udp", "config: data.codec: expected one of standard, dark, got 'udp'"),
    ("data.format=voc", "data.format: expected one of coco, mpii, got 'voc'"),
    ("search.reward=pck", "search.reward: expected one of ap, oks, got 'pck'"),
    ("model.ops=[conv_1x1,conv_9x9]", "model.ops[1]: expected one of conv_1x1,"),
    ("train.amp=1", "train.amp: expected one of none, bf16, fp16, got 1"),
    ("train.epochs=0", "train.epochs: must be at least 1, got 0"),
    ("train.lr=-1", "train.lr: must be a positive number, got -1.0"),
    ("train.lr=.nan", "train.lr: must be a positive number, got nan"),
    ("train.lr_steps=[5,2]", "train.lr_steps: must be increasing"),
    ("search.alpha_every=0", "search.alpha_every: must be at least 1, got 0"),
    ("data.input_size=[64]", "data.input_size: expected [height, width]"),
    ("data.blur_kernel=4", "data.blur_kernel: must be a positive odd number"),
])
def test_choices_and_ranges_are_checked_by_the_loader(override, needle):
    with pytest.raises(UserError) as e:
        load_config(None, [override])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bad_choice_in_a_file_names_the_file(tmp_path: Path):
    p = tmp_path / "bad.yaml"
    p.write_text("search:\n  branches: some\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    assert str(e.value) == f"{p}: search.branches: expected one of search, all, got 'some'"


def test_op_names_are_the_search_space_ops():
    # config.py lists the legal op names without importing the search space (a lower layer
    # may not import a higher one); this keeps the two lists the same.
    import typing

    from autopose.config import OpName
    from autopose.search_space.ops import OPS

    assert list(typing.get_args(OpName)) == list(OPS)


@pytest.mark.parametrize("override,needle", [
    # The hostile-user reproductions: each crashed later or passed silently.
    ("data.input_size=[0,0]", "config: data.input_size: expected [height, width] of positive"),
    ("data.heatmap_stride=0", "config: data.heatmap_stride: must be at least 1, got 0"),
    ("data.input_size=[64]", "config: data.input_size: expected [height, width]"),
    ("data.input_size=[-64,48]", "config: data.input_size: expected [height, width]"),
    ("data.sigma=-2", "config: data.sigma: must be a positive number, got -2.0"),
    # Every section's ranges.
    ("data.input_size=[66,48]", "config: data.input_size: [66, 48]: each side must be "
                                "divisible by data.heatmap_stride (4)"),
    ("data.sigma=.inf", "config: data.sigma: must be a positive number, got inf"),
    ("data.bbox_padding=0", "config: data.bbox_padding: must be a positive number"),
    ("data.workers=-1", "config: data.workers: must be >= 0, got -1"),
    ("data.val.det_score_thresh=1.5", "config: data.val.det_score_thresh: must be in [0, 1]"),
    ("data.aug.flip_prob=2", "config: data.aug.flip_prob: must be in [0, 1], got 2.0"),
    ("data.aug.scale_factor=1", "config: data.aug.scale_factor: must be in [0, 1), got 1.0"),
    ("data.aug.rotation_factor=-5", "config: data.aug.rotation_factor: must be in [0, 180]"),
    ("data.synthetic.num_train=-1", "config: data.synthetic.num_train: must be >= 0, got -1"),
    ("data.synthetic.image_size=[640]", "config: data.synthetic.image_size: expected [width,"),
    ("model.branch_channels=[]", "config: model.branch_channels: expected a list of positive"),
    ("model.width_mult=0", "config: model.width_mult: must be a positive number, got 0.0"),
    ("model.num_stages=0", "config: model.num_stages: must be at least 1, got 0"),
    ("model.ops=[skip,skip]", "config: model.ops: expected a list of distinct op names"),
    ("train.batch_size=0", "config: train.batch_size: must be at least 1, got 0"),
    ("train.lr=0", "config: train.lr: must be a positive number, got 0.0"),
    ("train.lr=.inf", "config: train.lr: must be a positive number, got inf"),
    ("train.lr_factor=0", "config: train.lr_factor: must be a positive number"),
    ("train.weight_decay=-0.0001", "config: train.weight_decay: must be a finite number >= 0"),
    ("train.momentum=1", "config: train.momentum: must be in [0, 1), got 1.0"),
    ("train.clip_grad=.nan", "config: train.clip_grad: must be a finite number >= 0"),
    ("train.lr_steps=[-1,5]", "config: train.lr_steps: must be increasing epochs >= 0"),
    ("train.width_mult=-1", "config: train.width_mult: must be a positive number, got -1.0"),
    ("test.batch_size=0", "config: test.batch_size: must be at least 1, got 0"),
    ("test.oks_thre=1.5", "config: test.oks_thre: must be in [0, 1], got 1.5"),
    ("test.in_vis_thre=-0.1", "config: test.in_vis_thre: must be in [0, 1], got -0.1"),
    ("search.epochs=0", "config: search.epochs: must be at least 1, got 0"),
    ("search.batch_size=0", "config: search.batch_size: must be at least 1, got 0"),
    ("search.weight_lr=-1", "config: search.weight_lr: must be a positive number"),
    ("search.alpha_lr=.nan", "config: search.alpha_lr: must be a positive number, got nan"),
    ("search.alpha_betas=[0.5,1.0]", "config: search.alpha_betas[1]: must be in [0, 1)"),
    ("search.reward_fraction=0", "config: search.reward_fraction: must be in (0, 1), got 0.0"),
    ("search.tau_end=0", "config: search.tau_end: must be a positive number, got 0.0"),
    ("search.warmup_max_fraction=2", "config: search.warmup_max_fraction: must be in [0, 1]"),
    ("search.input_size=[0,0]", "config: search.input_size: expected [height, width]"),
    ("search.input_size=[130,96]", "config: search.input_size: [130, 96]: each side must be"),
    ("search.controller.on_target=1", "config: search.controller.on_target: must be in (0, 1)"),
    ("search.controller.archs_per_update=0",
     "config: search.controller.archs_per_update: must be at least 1, got 0"),
    ("seed=-1", "config: seed: must be >= 0, got -1"),
])
def test_every_numeric_field_has_a_range(override, needle):
    with pytest.raises(UserError) as e:
        load_config(None, [override])
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_bad_value_in_a_file_names_the_file(tmp_path: Path):
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  input_size: [0, 0]\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}: data.input_size: expected [height, width]")


def test_the_built_in_setting_trains_on_the_short_schedule():
    # search then train --genotype without --config must take minutes, not SPEC's 210 epochs.
    from autopose.config import DEFAULT_CONFIG

    short = load_config(CONFIG_DIR / "synthetic" / "train_short.yaml")
    built_in = load_config(DEFAULT_CONFIG)
    # train_short's schedule over 3 epochs at a constant lr, at its input size.
    assert built_in.train.epochs == 3 and built_in.train.lr_steps == []
    assert dataclasses.replace(built_in.train, epochs=7, lr_steps=[6]) == short.train
    assert built_in.data.input_size == short.data.input_size
    assert built_in.data.aug == short.data.aug  # flips only
    # The search keeps HRNet's augmentation (as it ran before training had its own).
    from autopose.config import AugmentConfig
    from autopose.search.data import search_data_config

    assert search_data_config(built_in).aug == AugmentConfig() != built_in.data.aug
    assert search_data_config(load_config(DEFAULT_CONFIG, ["search.aug=null"])).aug == short.data.aug
