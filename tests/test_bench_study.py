"""``bench/study.py``: the paper's study (tables 4 and 5) at laptop scale.

The quick study runs for real (2 seeds x 7 rows: 12 searches, 14 trainings, 14 tests as
separate processes; about 3 minutes on one core), then again to check it is a pure resume.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from autopose.models.build import arch_for_baseline, build_model
from autopose.models.flops import count_macs


REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "bench" / "study.py"
ROWS = ["autopose", "random", "single_branch", "concat", "all_branches", "small_input",
        "hrnet_w32"]
SEARCHED = ROWS[:-1]
SEEDS = [0, 1]
MARKERS = ("search.json", "train.json", "test.json", "result.json")


def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``python bench/study.py ARGS`` from the repository root, on one OpenMP thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(STUDY), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _markers(out: Path) -> dict[str, float]:
    """mtime of every stage marker and of the HRNet width record."""
    found = {str(p.relative_to(out)): p.stat().st_mtime_ns
             for name in MARKERS for p in out.glob(f"*/seed*/{name}")}
    found["hrnet_w32/width.json"] = (out / "hrnet_w32" / "width.json").stat().st_mtime_ns
    return found


def _hrnet_gflops(width: float, hw: list[int]) -> float:
    with torch.device("meta"):
        net = build_model(arch_for_baseline("hrnet_w32", 17, width))
    return count_macs(net, (hw[0], hw[1]), device="meta") / 1e9


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The quick study, run twice in one folder: ``out``, both processes and the marker
    mtimes after the first run."""
    out = tmp_path_factory.mktemp("study") / "tmp"
    first = _run("--quick", "--out", str(out))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    before = _markers(out)
    start = time.monotonic()
    second = _run("--quick", "--out", str(out))
    return {"out": out, "first": first, "second": second, "before": before,
            "second_s": time.monotonic() - start}


def _results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_every_row_and_seed_is_measured(quick_study: dict[str, Any]) -> None:
    results = _results(quick_study["out"])
    # Derived networks are trained at the training config's width, not the genotype's (2).
    train_width = yaml.safe_load((REPO / "configs/synthetic/train_short.yaml").read_text())[
        "train"]["width_mult"]
    assert sorted((r["row"], r["seed"]) for r in results) == sorted(
        (row, seed) for row in ROWS for seed in SEEDS)
    for r in results:
        assert math.isfinite(r["AP"]) and 0.0 <= r["AP"] <= 1.0, r
        assert math.isfinite(r["AP50"]) and 0.0 <= r["AP50"] <= 1.0, r
        assert r["gflops"] > 0 and r["params"] > 0, r
        assert r["input_size"] == [64, 48], r  # the quick training input, not the search's
        assert r["train_cpu_s"] > 0 and r["train_wall_s"] > 0, r
        if r["row"] in SEARCHED:
            assert r["search_cpu_min"] > 0, r
            assert r["network"].startswith(f"derived network (width_mult {train_width:g},"), r
        else:
            assert r["search_cpu_min"] is None, r
            assert r["network"].startswith("hrnet_w32 (width_mult"), r


def test_tables_and_study_record(quick_study: dict[str, Any]) -> None:
    out = quick_study["out"]
    table = (out / "table.md").read_text().splitlines()
    body = [ln for ln in table if ln.startswith("| ") and not ln.startswith("| row")]
    assert [ln.split("|")[1].strip() for ln in body] == ROWS
    for ln in body:
        assert ln.rstrip().endswith("| 2 |"), ln  # two seeds per row
        assert "±" in ln.split("|")[2]  # AP as mean ± std
    assert "| hrnet_w32 |" in table[-1] and "| - |" in table[-1]  # no search cost
    study = json.loads((out / "study.json").read_text())
    assert [a["row"] for a in study["rows"]] == ROWS
    assert study["machine"]["cpu_count"] == os.cpu_count() and study["machine"]["platform"]
    assert study["date"] and "git_commit" in study
    # 12 searches, 14 trainings, 14 tests, each with the seed passed to it.
    commands = study["commands"]
    assert len(commands) == 12 + 14 + 14
    for c in commands:
        flag = f"--seed {c['seed']}" if c["stage"] == "search" else f"seed={c['seed']}"
        assert flag in c["command"] and " -m autopose " + c["stage"] in c["command"], c
    with open(out / "study.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # The table the study printed is table.md.
    assert (out / "table.md").read_text() in quick_study["first"].stdout


def test_rows_search_what_they_say(quick_study: dict[str, Any]) -> None:
    out = quick_study["out"]
    for seed in SEEDS:
        def search(row: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            d = out / row / f"seed{seed}" / "search"
            return (json.loads((d / "genotype.json").read_text()),
                    yaml.safe_load((d / "config.yaml").read_text()),
                    json.loads((d / "run.json").read_text()))

        geno, cfg, run = search("autopose")
        assert run["strategy"] == "autopose" and cfg["seed"] == seed
        assert cfg["search"]["input_size"] == [64, 48] and geno["aggregation"] == "cell"
        assert not (out / "autopose" / f"seed{seed}" / "search" / "checkpoint.pt").exists()
        assert search("random")[2]["strategy"] == "random"
        geno, cfg, _ = search("single_branch")
        assert cfg["search"]["single_branch"] is True
        assert all(sum(v) <= 1 for v in geno["scale_vectors"]), geno["scale_vectors"]
        assert search("concat")[0]["aggregation"] == "concat"
        geno, cfg, _ = search("all_branches")
        assert cfg["search"]["branches"] == "all"
        assert all(all(v) for v in geno["scale_vectors"])
        assert search("small_input")[1]["search"]["input_size"] == [48, 36]
        train_cfg = yaml.safe_load(
            (out / "small_input" / f"seed{seed}" / "train" / "config.yaml").read_text())
        assert train_cfg["data"]["input_size"] == [64, 48] and train_cfg["seed"] == seed


def test_hrnet_is_matched_to_the_autopose_rows_flops(quick_study: dict[str, Any]) -> None:
    out = quick_study["out"]
    results = _results(out)
    width = json.loads((out / "hrnet_w32" / "width.json").read_text())
    derived = [r["gflops"] for r in results if r["row"] == "autopose"]
    # The target computed from the genotypes is the mean of the trained networks' FLOPs.
    assert width["target_gflops"] == pytest.approx(sum(derived) / len(derived), rel=1e-9)
    for r in (r for r in results if r["row"] == "hrnet_w32"):
        assert r["width_mult"] == width["width_mult"] < 1
        assert r["gflops"] == pytest.approx(width["gflops"], rel=1e-9)
    # No neighbouring grid multiplier is closer to the target.
    target, w = width["target_gflops"], width["width_mult"]
    err = abs(width["gflops"] - target)
    for other in (round(w - 0.005, 3), round(w + 0.005, 3)):
        assert abs(_hrnet_gflops(other, width["input_size"]) - target) >= err


def test_second_run_is_a_pure_resume(quick_study: dict[str, Any]) -> None:
    second = quick_study["second"]
    assert second.returncode == 0, second.stderr[-3000:]
    assert "study: 0 stages run" in second.stdout
    assert " ... " not in second.stdout  # no stage started
    assert _markers(quick_study["out"]) == quick_study["before"]
    assert quick_study["second_s"] < 60  # re-aggregation only (the first run takes minutes)
    assert (quick_study["out"] / "table.md").read_text() in second.stdout


@pytest.mark.parametrize("args, message", [
    (["--rows", "nope"], "invalid choice"),
    (["--small-input", "96by72"], "HEIGHTxWIDTH"),
    (["--set", "novalue"], "key=value"),
    (["--seeds", "0", "0"], "given twice"),
    (["--train-config", "missing.yaml"], "no such file"),
    (["--set", "train.no_such_key=1"], "unknown key"),
    # A choice the config does not list is refused before any stage runs.
    (["--set", "search.reward=bogus"], "search.reward: expected one of ap, oks"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                              message: str) -> None:
    done = _run("--out", str(tmp_path / "s"), *args, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "s").exists()  # nothing was run


def test_a_failing_stage_stops_the_study_with_its_error(tmp_path: Path) -> None:
    # A value the config accepts but the search refuses (the config loader checks choices and
    # ranges, not whether files exist): the search's own one-line error (exit code 2) comes
    # back through the study.
    missing = tmp_path / "missing.json"
    done = _run("--quick", "--out", str(tmp_path / "s"), "--rows", "autopose", "--seeds", "0",
                "--set", f"data.train.ann={missing}", f"data.train.images={tmp_path}",
                timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "autopose seed 0: search failed (exit code 2)" in done.stderr
    assert f"{missing}: data.train.ann not found" in done.stderr
    assert not (tmp_path / "s" / "autopose" / "seed0" / "search.json").exists()


def test_a_killed_stage_is_resumed_and_other_settings_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "s"
    args = ["--quick", "--out", str(out), "--rows", "autopose", "--seeds", "0"]
    first = _run(*args, "--keep-search-checkpoints", timeout=300)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    cell = out / "autopose" / "seed0"
    assert (cell / "search" / "checkpoint.pt").exists() and (cell / "train" / "last.pt").exists()
    # As if the study had been killed after both processes checkpointed, before they ended.
    for name in MARKERS:
        (cell / name).unlink()
    (cell / "search" / "genotype.json").unlink()
    second = _run(*args, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "autopose seed 0: search (resumed) ..." in second.stdout
    assert "autopose seed 0: train (resumed) ..." in second.stdout
    for stage in ("search", "train"):
        rec = json.loads((cell / f"{stage}.json").read_text())
        assert rec["resumed"] is True and rec["argv"][-1] == "--resume"
    assert (cell / "search" / "genotype.json").exists()
    assert not (cell / "search" / "checkpoint.pt").exists()  # deleted once done
    assert [r["row"] for r in _results(out)] == ["autopose"]
    # Other overrides in the same folder would mix two settings in one table: refused.
    third = _run(*args, "--set", "train.lr=0.01", timeout=120)
    assert third.returncode == 2
    assert "made by another command" in third.stderr and "train.lr=0.01" in third.stderr
