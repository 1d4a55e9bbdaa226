"""``autopose study --quick`` for real: every stage a process, as a user runs it.

One module-scoped study, run the way a long study is: started with ``--jobs 2`` and stopped
by SIGTERM, started again and killed with SIGKILL (the study and its stage processes, as a
lost session would), then finished; run once more (a pure resume), and
from its records alone into another folder (a fresh clone). The quick study is 7 searches,
9 trainings and 9 tests (about 95 s on one core).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from autopose.cli import build_parser
from autopose.config import CONFIG_DIR
from autopose.models.build import arch_for_baseline, build_model
from autopose.models.flops import count_macs
from autopose.study.commands import (RESUME, THREAD_OVERRIDES, CommandForm, search_argv,
                                     train_argv)
from autopose.study.commands import test_argv as stage_test_argv  # not a test
from autopose.study.options import make_plan
from process_helpers import processes_naming

ROWS = ["autopose", "random", "single_branch", "concat", "all_branches", "small_input",
        "genotype_short", "hrnet_w32"]
SEEDS = {row: [0] for row in ROWS}
SEARCHED = ROWS[:6]
MARKERS = ("search.json", "train.json", "test.json", "result.json")
# Every stage of the quick study: 6 searches, 8 trainings, 8 tests, 8 results, the width.
STAGES = 6 + 8 + 8 + 8 + 1


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "autopose", "study", *args]


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(*args), capture_output=True, text=True, timeout=timeout)


def _markers(out: Path) -> dict[str, int]:
    """mtime of every stage marker and of the HRNet width record."""
    found = {str(p.relative_to(out)): p.stat().st_mtime_ns
             for name in MARKERS for p in out.glob(f"*/seed*/{name}")}
    width = out / "hrnet_w32" / "width.json"
    if width.exists():
        found["hrnet_w32/width.json"] = width.stat().st_mtime_ns
    return found


def _start(log: Path, *args: str) -> subprocess.Popen[bytes]:
    """The study in a process group of its own (killed whole by the test)."""
    with open(log, "wb") as f:
        return subprocess.Popen(_cmd(*args), stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_for(ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while not ready():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _ran(stdout: str) -> tuple[int, int]:
    line = next(ln for ln in stdout.splitlines() if " stages run, " in ln)
    ran, rest = line.removeprefix("study: ").split(" stages run, ")
    return int(ran), int(rest.split(" skipped")[0])


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("study")
    out, records = base / "out", base / "records"
    args = ["--quick", "--out", str(out), "--records", str(records)]
    t: dict[str, Any] = {"out": out, "records": records, "base": base, "args": args}
    start = time.monotonic()
    # 1. Two stages at once; SIGTERM once two stages have finished.
    proc = _start(base / "term.log", *args, "--jobs", "2")
    _wait_for(lambda: len(_markers(out)) >= 2, proc, base / "term.log")
    proc.send_signal(signal.SIGTERM)
    t["term_code"] = proc.wait(timeout=60)
    t["term_log"] = (base / "term.log").read_text()
    t["term_left"] = processes_naming(out)
    t["after_term"] = _markers(out)
    # 2. Again (one stage at a time: less work lost to the kill); SIGKILL of the whole
    # process group once 6 more stages have finished.
    proc = _start(base / "kill.log", *args)
    _wait_for(lambda: len(_markers(out)) >= len(t["after_term"]) + 6, proc, base / "kill.log")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    t["kill_left"] = processes_naming(out)
    t["after_kill"] = _markers(out)
    # 3. To the end, one stage at a time.
    t["first"] = _run(*args)
    t["total_s"] = time.monotonic() - start
    t["final"] = _markers(out)
    # 4. Once more: a pure resume. 5. From the records alone, into an empty folder.
    start = time.monotonic()
    t["second"] = _run(*args)
    t["second_s"] = time.monotonic() - start
    t["after_second"] = _markers(out)
    t["fresh"] = _run("--quick", "--out", str(base / "fresh"), "--records", str(records))
    return t


def _results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_killed_and_resumed_reruns_no_finished_stage(quick: dict[str, Any]) -> None:
    assert quick["term_code"] == 130, quick["term_log"][-3000:]
    assert "interrupted; run the same command again to resume" in quick["term_log"]
    assert quick["term_left"] == [] and quick["kill_left"] == []  # no stage runs on
    first = quick["first"]
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    before = quick["after_kill"]
    assert len(quick["after_term"]) >= 2 and len(before) >= len(quick["after_term"]) + 6
    # Every marker made before a kill is the same file (not made again), ...
    assert {k: quick["final"][k] for k in before} == before
    assert {k: before[k] for k in quick["after_term"]} == quick["after_term"]
    # ... the last run skipped exactly those stages and ran the others.
    assert _ran(first.stdout) == (STAGES - len(before), len(before))
    assert len(quick["final"]) == STAGES


def test_every_row_and_seed_is_measured(quick: dict[str, Any]) -> None:
    out = quick["out"]
    results = _results(out)
    # Derived networks are trained at the training config's width, not the genotype's (2).
    train_width = yaml.safe_load((CONFIG_DIR / "synthetic" / "train_short.yaml").read_text())[
        "train"]["width_mult"]
    assert [(r["row"], r["seed"]) for r in results] == [
        (row, seed) for row in ROWS for seed in SEEDS[row]]
    width = json.loads((out / "hrnet_w32" / "width.json").read_text())
    for r in results:
        assert math.isfinite(r["AP"]) and 0.0 <= r["AP"] <= 1.0, r
        assert math.isfinite(r["AP50"]) and 0.0 <= r["AP50"] <= 1.0, r
        assert r["gflops"] > 0 and r["params"] > 0, r
        assert r["input_size"] == [64, 48], r  # the quick training input, not the search's
        assert r["train_cpu_min"] > 0 and r["train_wall_s"] > 0, r
        if r["row"] == "hrnet_w32":
            assert r["search_cpu_min"] is None and r["network"].startswith("hrnet_w32"), r
            continue
        assert r["network"].startswith(f"derived network (width_mult {train_width:g},"), r
        if r["row"] == "genotype_short":
            assert r["search_cpu_min"] is None, r
            genotype = CONFIG_DIR / "synthetic" / "genotype_short.json"
        else:
            assert r["search_cpu_min"] > 0, r
            genotype = out / r["row"] / f"seed{r['seed']}" / "search" / "genotype.json"
        # The trained network is the one of its genotype: a result is never paired with
        # another search's network, however the study was interrupted.
        assert r["scale_vectors"] == json.loads(genotype.read_text())["scale_vectors"], r
    # The HRNet width was matched to FLOPs counted from the autopose genotypes: those of
    # the networks trained from them.
    assert width["reference_gflops"] == pytest.approx(
        [r["gflops"] for r in results if r["row"] == "autopose"], rel=1e-12)


def test_outputs_have_the_documented_form(quick: dict[str, Any]) -> None:
    out = quick["out"]
    study = json.loads((out / "study.json").read_text())
    assert list(study) == ["rows", "differences", "ordering", "ranking", "commands", "commit",
                           "machine", "date", "options"]
    assert list(study["rows"]) == ROWS
    by_cell = {(r["row"], r["seed"]): r for r in _results(out)}
    for row, e in study["rows"].items():
        assert {"ap", "seeds", "ap50", "params_m", "gflops", "search_cpu_min",
                "train_cpu_min", "ap_mean", "ap_ci95"} <= set(e)
        assert e["seeds"] == SEEDS[row]
        assert e["ap"] == [by_cell[(row, s)]["AP"] for s in e["seeds"]]
        assert e["gflops"] == [by_cell[(row, s)]["gflops"] for s in e["seeds"]]
        assert e["ap_mean"] == pytest.approx(sum(e["ap"]) / len(e["ap"]))
        assert (e["ap_ci95"] is None) == (len(e["seeds"]) < 2)
    assert study["rows"]["hrnet_w32"]["width"]["width_mult"] > 0
    assert set(study["differences"]) == {"autopose-random", "autopose-single_branch"}
    assert len(study["ordering"]["comparisons"]) == 4 and study["ranking"] is None
    assert study["machine"]["cpu_count"] == os.cpu_count() and study["date"]
    assert "commit" in study and study["options"]["quick"] is True
    # Each stage's marker names the commit its process ran (this checkout's HEAD).
    head = study["commit"]
    assert head and all(json.loads(p.read_text())["commit"] == head
                        for name in MARKERS[:3] for p in out.glob(f"*/seed*/{name}"))
    commands = study["commands"]
    assert len(commands) == 6 + 8 + 8
    for c in commands:
        flag = f"--seed {c['seed']}" if c["stage"] == "search" else f"seed={c['seed']}"
        assert flag in c["command"] and c["command"].startswith(
            f"python -m autopose {c['stage']} "), c
        assert str(out) not in c["command"] and "{out}/" in c["command"], c
    table = (out / "table.md").read_text()
    body = [ln for ln in table.splitlines() if ln.startswith("| ") and ln.split("|")[1].strip()
            in ROWS]
    assert [ln.split("|")[1].strip() for ln in body] == ROWS
    assert "## Differences of mean AP" in table and "| autopose - random |" in table
    assert "## The paper's ordering of mean AP" in table and "Holds in the means:" in table
    with open(out / "study.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert table in quick["first"].stdout  # the table the study printed is table.md


def test_rows_search_what_they_say(quick: dict[str, Any]) -> None:
    out = quick["out"]

    def search(row: str, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any], dict[str,
                                                                                       Any]]:
        d = out / row / f"seed{seed}" / "search"
        return (json.loads((d / "genotype.json").read_text()),
                yaml.safe_load((d / "config.yaml").read_text()),
                json.loads((d / "run.json").read_text()))

    for seed in SEEDS["autopose"]:
        geno, cfg, run = search("autopose", seed)
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
    train_cfg = yaml.safe_load((out / "small_input" / "seed0" / "train" /
                                "config.yaml").read_text())
    assert train_cfg["data"]["input_size"] == [64, 48] and train_cfg["seed"] == 0
    assert not (out / "genotype_short" / "seed0" / "search").exists()
    assert json.loads((out / "genotype_short" / "seed0" / "train" / "genotype.json").read_text(
        ))["scale_vectors"] == json.loads((CONFIG_DIR / "synthetic" /
                                           "genotype_short.json").read_text())["scale_vectors"]


def _hrnet_gflops(width: float, hw: list[int]) -> float:
    import torch

    with torch.device("meta"):
        net = build_model(arch_for_baseline("hrnet_w32", 17, width))
    return count_macs(net, (hw[0], hw[1]), device="meta") / 1e9


def test_hrnet_is_matched_to_the_autopose_rows_flops(quick: dict[str, Any]) -> None:
    out = quick["out"]
    results = _results(out)
    width = json.loads((out / "hrnet_w32" / "width.json").read_text())
    derived = [r["gflops"] for r in results if r["row"] == "autopose"]
    assert len(derived) == 1
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


def test_second_run_is_a_pure_resume(quick: dict[str, Any]) -> None:
    second = quick["second"]
    assert second.returncode == 0, second.stderr[-3000:]
    assert _ran(second.stdout) == (0, STAGES)
    assert " ... " not in second.stdout  # no stage started
    assert quick["after_second"] == quick["final"]
    assert quick["second_s"] < 30  # re-aggregation only
    assert (quick["out"] / "table.md").read_text() in second.stdout


def test_a_fresh_clone_resumes_from_the_records(quick: dict[str, Any]) -> None:
    fresh, records = quick["fresh"], quick["records"]
    assert fresh.returncode == 0, fresh.stdout[-3000:] + fresh.stderr[-3000:]
    assert _ran(fresh.stdout) == (0, STAGES)
    # The records are small JSON: markers and genotypes, no checkpoint.
    files = sorted(str(p.relative_to(records)) for p in records.rglob("*") if p.is_file())
    assert all(f.endswith(".json") for f in files) and len(files) == STAGES + 6
    a = json.loads((quick["out"] / "study.json").read_text())
    b = json.loads((quick["base"] / "fresh" / "study.json").read_text())
    assert a["rows"] == b["rows"] and a["commands"] == b["commands"]


def test_jobs_2_runs_the_commands_of_jobs_1_on_one_thread(quick: dict[str, Any]) -> None:
    out = quick["out"]
    plan = make_plan(build_parser().parse_args(["study", *quick["args"]]))
    assert plan.jobs == 1
    form = CommandForm(plan.out)
    width = json.loads((out / "hrnet_w32" / "width.json").read_text())["width_mult"]
    one_thread = 0
    for row in ROWS:
        for seed in SEEDS[row]:
            w = width if row == "hrnet_w32" else None
            expected = {"train": train_argv(plan, row, seed, w),
                        "test": stage_test_argv(plan, row, seed, w)}
            if row in SEARCHED:
                expected["search"] = search_argv(plan, row, seed)
            for stage, argv in expected.items():
                rec = json.loads((out / row / f"seed{seed}" / f"{stage}.json").read_text())
                ran = [a for a in rec["argv"] if a != RESUME]
                if ran[-len(THREAD_OVERRIDES):] == list(THREAD_OVERRIDES):
                    one_thread += 1  # run by --jobs 2: the thread overrides appended
                    ran = ran[:-len(THREAD_OVERRIDES)]
                assert ran == form.portable(argv), (row, seed, stage)
    # Stages were run by both: --jobs 2 before the kills, --jobs 1 after.
    assert 0 < one_thread < 6 + 8 + 8


def test_other_settings_are_refused_and_a_killed_training_resumed(
        quick: dict[str, Any]) -> None:
    out, records, args = quick["out"], quick["records"], quick["args"]
    # Other overrides in the same folder would mix two settings in one table.
    other = _run(*args, "train.lr=0.01", timeout=120)
    assert other.returncode == 2
    assert "made by another command" in other.stderr and "train.lr=0.01" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1
    assert _markers(out) == quick["final"]
    # As if the study had been killed after genotype_short's training wrote its last.pt
    # (after best.pt: the trainer writes them in that order) but before it ended.
    cell = out / "genotype_short" / "seed0"
    result = json.loads((cell / "result.json").read_text())
    for name in ("train.json", "test.json", "result.json"):
        (cell / name).unlink()
        (records / "genotype_short" / "seed0" / name).unlink()
    again = _run(*args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "genotype_short seed 0: train (resumed) ..." in again.stdout
    assert _ran(again.stdout) == (3, STAGES - 3)
    rec = json.loads((cell / "train.json").read_text())
    assert rec["resumed"] is True and rec["argv"][-1] == "--resume"
    assert json.loads((records / "genotype_short" / "seed0" / "train.json").read_text()) == rec
    again_result = json.loads((cell / "result.json").read_text())
    assert (again_result["AP"], again_result["gflops"]) == (result["AP"], result["gflops"])


def test_a_failing_stage_stops_the_study_with_its_error(tmp_path: Path) -> None:
    # A value the config accepts but the stages refuse (the loader checks choices and
    # ranges, not whether files exist): the stage's own one-line error (exit code 2) comes
    # back through the study; the other running stage is stopped with it.
    missing = tmp_path / "missing.json"
    out = tmp_path / "s"
    done = _run("--quick", "--out", str(out), "--rows", "autopose", "genotype_short",
                "--seeds", "1", "--jobs", "2", f"data.train.ann={missing}",
                f"data.train.images={tmp_path}", timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("autopose study: error: "), done.stderr
    assert "failed (exit code 2)" in first and f"{missing}: data.train.ann not found" in first
    assert _markers(out) == {} and processes_naming(out) == []
