"""Width-reduced HRNet (``train.width_mult`` with ``--model hrnet_w32|hrnet_w48``): channel
counts, FLOPs, the checkpoint's arch record, and a save/load round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autopose.config import Config
from autopose.data.keypoints import COCO17
from autopose.engine.checkpoint import load_model, save_checkpoint
from autopose.errors import UserError
from autopose.models import MODELS
from autopose.models.build import (ArchSource, arch_for_baseline, build_model, describe_arch,
                                   resolve_arch)
from autopose.models.flops import count_macs, count_params
from autopose.models.hrnet import HRNetPose, scale_channels


def test_scale_channels_rounds_and_keeps_one() -> None:
    assert scale_channels(64, 0.125) == 8
    assert scale_channels(32, 0.1) == 3  # 3.2
    assert scale_channels(256, 0.01) == 3  # 2.56
    assert scale_channels(32, 0.001) == 1  # never zero channels


def test_width_one_is_the_published_network() -> None:
    with torch.device("meta"):
        plain = MODELS["hrnet_w32"](num_joints=17)
        one = MODELS["hrnet_w32"](num_joints=17, width_mult=1.0)
    assert count_params(plain) == count_params(one) == 28_536_113
    assert list(plain.state_dict()) == list(one.state_dict())


def test_every_channel_count_is_scaled() -> None:
    with torch.device("meta"):
        net = MODELS["hrnet_w32"](num_joints=17, width_mult=0.125)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    # The stem's 64 -> 8, the bottleneck's 64 / 256 -> 8 / 32, branches 32..256 -> 4..32.
    assert convs[0].out_channels == 8 and convs[1].out_channels == 8
    widths = {c.out_channels for c in convs[:-1]}
    assert widths == {4, 8, 16, 32}
    assert net.final.in_channels == 4 and net.final.out_channels == 17
    assert max(c.in_channels for c in convs) <= 32
    # Roughly quadratic in the width: far fewer MACs than the full network.
    with torch.device("meta"):
        full = MODELS["hrnet_w32"](num_joints=17)
    small_macs = count_macs(net, (64, 48), device="meta")
    full_macs = count_macs(full, (64, 48), device="meta")
    assert 0 < small_macs < full_macs / 40


def test_tiny_hrnet_checkpoint_reloads_with_identical_output(tmp_path: Path) -> None:
    torch.manual_seed(0)
    arch = arch_for_baseline("hrnet_w32", 17, 0.125)
    assert arch == {"kind": "baseline", "name": "hrnet_w32", "num_joints": 17,
                    "width_mult": 0.125}
    assert "width_mult 0.125" in describe_arch(arch)
    net = build_model(arch).eval()
    with torch.no_grad():
        # Non-trivial BatchNorm statistics, so that a reload that lost them would show.
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        x = torch.randn(2, 3, 64, 48)
        y = net(x)
    assert y.shape == (2, 17, 16, 12) and torch.isfinite(y).all()
    path = save_checkpoint(tmp_path / "hr.pt", net, Config(), arch, COCO17, epoch=1)
    again, ckpt = load_model(path, torch.device("cpu"))
    assert ckpt["arch"]["width_mult"] == 0.125
    assert count_params(again) == count_params(net)
    with torch.no_grad():
        assert torch.equal(again(x), y)


def test_trainer_records_the_multiplier_for_hrnet_only() -> None:
    cfg = Config()
    cfg.train.width_mult = 0.25
    assert resolve_arch(ArchSource(model="hrnet_w48"), cfg, 17)["width_mult"] == 0.25
    # SimpleBaseline has no multiplier: its arch is unchanged whatever train.width_mult says.
    assert "width_mult" not in resolve_arch(ArchSource(model="simple_baseline_50"), cfg, 17)
    # Width 1 (or none) records nothing: the arch of a full-width run is as it always was.
    cfg.train.width_mult = 1.0
    assert "width_mult" not in resolve_arch(ArchSource(model="hrnet_w32"), cfg, 17)
    cfg.train.width_mult = None
    assert "width_mult" not in resolve_arch(ArchSource(model="hrnet_w32"), cfg, 17)


@pytest.mark.parametrize("bad", [0, -0.5, "half", True])
def test_bad_multiplier_in_a_checkpoint_arch_is_named(bad: object) -> None:
    arch = {"kind": "baseline", "name": "hrnet_w32", "num_joints": 17, "width_mult": bad}
    with pytest.raises(UserError, match="arch.width_mult"):
        build_model(arch, "x.pt")


def test_multiplier_on_simple_baseline_arch_is_refused() -> None:
    arch = {"kind": "baseline", "name": "simple_baseline_50", "num_joints": 17,
            "width_mult": 0.5}
    with pytest.raises(UserError, match="no width multiplier"):
        build_model(arch, "x.pt")
