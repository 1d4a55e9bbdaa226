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
