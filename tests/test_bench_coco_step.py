"""bench/coco_step.py --quick: builds the paper-width networks, steps them once at a tiny
input, and prints its tables with finite figures (docs/coco.md quotes its full run)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "coco_step.py"


def _load():
    spec = importlib.util.spec_from_file_location("coco_step", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finite_numbers(obj, where: str = "") -> list[str]:
    """Paths of the numbers in a JSON tree that are not finite."""
    bad = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            bad += _finite_numbers(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            bad += _finite_numbers(v, f"{where}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        bad.append(where)
    return bad


def test_quick_run_prints_tables_with_finite_figures(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "coco_step.json"
    cs = _load()
    assert cs.main(["--quick", "--device", "cpu", "--nets", "derived,supernet",
                    "--gpus", "1,8", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for line in ("network ", "training, configs/coco/autopose_256x192.yaml",
                 "search, configs/coco/search_256x192.yaml", "ASSUMED effective training"):
        assert line in text, line
    report = json.loads(out.read_text())
    assert not _finite_numbers(report)
    nets = report["networks"]
    assert set(nets) == {"derived", "supernet"}
    for r in nets.values():
        for key in ("params", "gmacs_per_image", "act_bytes_per_image", "step_seconds",
                    "host_seconds", "aten_ops_per_step", "grad_tensors"):
            assert r[key] > 0, (r["net"], key)
    # Paper widths: the derived network's branches are 32-256 wide, the supernet's 16-128.
    assert "widths [32, 64, 128, 256]" in nets["derived"]["description"]
    assert "widths [16, 32, 64, 128]" in nets["supernet"]["description"]
    assert 0 < nets["supernet"]["gmacs_mean_sample"] <= nets["supernet"]["gmacs_max_sample"]
    ext = report["extrapolation"]
    assert [e["gpus"] for e in ext["train"]] == [1, 8]
    assert [e["per_gpu_batch"] for e in ext["train"]] == [128, 16]
    # Memory per GPU falls with the per-GPU batch; the search's batch is per process.
    assert ext["train"][0]["mem_fp32_gib"] > ext["train"][1]["mem_fp32_gib"]
    assert ext["search"][0]["mem_fp32_gib"] == ext["search"][1]["mem_fp32_gib"]
