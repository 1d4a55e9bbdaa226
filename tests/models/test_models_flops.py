"""Parameters and GFLOPs of the baselines, the MAC convention, and the flops command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from autopose.cli import main
from autopose.config import ModelConfig
from autopose.errors import UserError
from autopose.models import MODELS
from autopose.models.derived import DerivedNetwork
from autopose.models.flops import count_macs, flops_report
from autopose.models.simple_baseline import simple_baseline_50
from autopose.search_space.genotype import derive_genotype

# Exact counts of our builds, and the published figures they must stay within 1 % of.
BASELINES = {
    "hrnet_w32": (28_536_113, 28.5e6, (7.1, 7.8)),
    "hrnet_w48": (63_595_745, 63.6e6, (14.6, 15.8)),
    "simple_baseline_50": (33_999_697, 34.0e6, (8.9, 9.7)),
}


@pytest.mark.parametrize("name", list(BASELINES))
def test_baseline_params_and_gflops(name: str) -> None:
    exact, published, (lo, hi) = BASELINES[name]
    report = flops_report(name, "256x192")
    assert report["params"] == exact
    assert abs(report["params"] - published) / published < 0.01
    assert lo <= report["gflops"] <= hi, report["gflops"]
    assert "multiply-accumulates" in report["convention"]


def test_mac_convention_on_known_layers() -> None:
    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)  # 8*3*9 MACs per output pixel
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # 8*9 per output pixel
            self.up = nn.ConvTranspose2d(8, 2, 4, 2, 1)  # counted over output pixels
            self.fc = nn.Linear(2 * 20 * 20, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.up(self.dw(self.conv(x)))
            return self.fc(y.flatten(1))

    macs = count_macs(Tiny(), (10, 10))
    expected = 8 * 3 * 9 * 100 + 8 * 9 * 100 + 8 * 2 * 16 * 400 + 800 * 5
    assert macs == expected
    assert count_macs(Tiny(), (10, 10), batch=3) == 3 * expected


def test_baseline_output_shapes() -> None:
    # Shapes only, so on the meta device: no weights are initialised, no arithmetic is done.
    with torch.device("meta"), torch.no_grad():
        for name in MODELS:
            y = MODELS[name](num_joints=16)(torch.empty(2, 3, 256, 192))
            assert y.shape == (2, 16, 64, 48), name


def test_cli_json_for_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--model", "hrnet_w32", "--input", "256x192", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"model", "input", "params", "params_m", "gflops", "convention"}
    assert out["model"] == "hrnet_w32" and out["input"] == "256x192"
    assert out["params"] == BASELINES["hrnet_w32"][0]
    assert 7.1 <= out["gflops"] <= 7.8


def test_cli_text_prints_convention(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--model", "simple_baseline_50"]) == 0
    out = capsys.readouterr().out
    assert "convention" in out and "/ 1e9" in out and "34.00 M" in out


def test_cli_genotype_uses_its_width_mult(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ModelConfig()
    g = torch.Generator().manual_seed(0)
    genotype = derive_genotype(torch.randn(6, 6, generator=g), torch.randn(15, 6, generator=g),
                               cfg, [[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    path = genotype.save(tmp_path / "genotype.json")
    assert main(["flops", "--model", str(path), "--input", "128x96", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    with torch.device("meta"):
        net = DerivedNetwork(genotype)  # width_mult 2 from the file
    assert out["params"] == sum(p.numel() for p in net.parameters())
    assert out["gflops"] == round(count_macs(net, (128, 96), device="meta") / 1e9, 3)
    assert out["gflops"] > 0


def test_cli_bad_input_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--model", "resnet_9000"]) == 2
    assert "--model: unknown model 'resnet_9000'" in capsys.readouterr().err
    assert main(["flops", "--model", "hrnet_w32", "--input", "256"]) == 2
    assert "--input: expected HEIGHTxWIDTH" in capsys.readouterr().err
    bad = tmp_path / "genotype.json"
    bad.write_text(json.dumps({"version": 7}))
    assert main(["flops", "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: version: unsupported version 7" in err and err.count("\n") == 1


def test_simple_baseline_initial_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = simple_baseline_50()
    # A standard ResNet-50 state dict: backbone names, plus a classifier that is ignored.
    state = dict(src.backbone.state_dict())
    state["fc.weight"] = torch.zeros(1000, 2048)
    state["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)
    model = simple_baseline_50(weights=path)
    torch.testing.assert_close(model.backbone.layer3[2].conv2.weight,
                               src.backbone.layer3[2].conv2.weight)
    # A full-model checkpoint under "state_dict" with a DataParallel prefix.
    full = tmp_path / "full.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, full)
    torch.testing.assert_close(simple_baseline_50(weights=full).final.weight, src.final.weight)


def test_simple_baseline_bad_weights(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"junk.pth: cannot load weights"):
        simple_baseline_50(weights=junk)
    with pytest.raises(UserError, match=r"nope.pth: weights file not found"):
        simple_baseline_50(weights=tmp_path / "nope.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, wrong)
    with pytest.raises(UserError, match=r"wrong.pth: does not fit SimpleBaseline-50 \(missing"):
        simple_baseline_50(weights=wrong)


def test_flops_command_quiet_when_reader_leaves() -> None:
    """`autopose flops ... | head -0`: the reader closes the pipe before the summary is
    written; the command stops with 141 (128 + SIGPIPE) and no traceback."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "autopose", "flops", "--model", "hrnet_w32",
             "--input", "64x48"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""
