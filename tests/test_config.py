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
