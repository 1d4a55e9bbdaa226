"""The paper's study (AutoPose tables 4 and 5) at laptop scale, on the built-in synthetic set.

For each seed, each row below is searched (except ``hrnet_w32``), its derived network is
trained from scratch with one training config and tested; every stage is a fresh
``python -m autopose ...`` process, as a user would run it:

================  ==========================================================================
row               the search
================  ==========================================================================
autopose          ``autopose search`` (bi-level: cells by gradient, branches by the controller)
random            ``autopose search --strategy random`` (random search, the same budget)
single_branch     ``search.single_branch=true`` (at most one branch per stage)
concat            ``model.aggregation=concat`` (no aggregation cell: concatenation)
all_branches      ``search.branches=all`` (every branch on, no controller)
small_input       ``search.input_size=[H,W]`` (``--small-input``, default 96x72); training
                  stays at the training config's input size
hrnet_w32         no search: HRNet-W32 with every channel count scaled by the
                  ``train.width_mult`` whose FLOPs (at the training input size) are closest to
                  the mean of the ``autopose`` row's derived networks, trained the same way
================  ==========================================================================

Per (row, seed) the stages are, with ``S`` the seed and ``SETS`` the ``--set`` overrides::

    python -m autopose search --config SEARCH_CFG --out OUT/ROW/seedS/search --seed S SETS [ROW's]
    python -m autopose train --config TRAIN_CFG (--genotype .../search/genotype.json |
        --model hrnet_w32) --out OUT/ROW/seedS/train seed=S SETS [train.width_mult=W for HRNet]
    python -m autopose test --checkpoint OUT/ROW/seedS/train/best.pt --config TRAIN_CFG
        --out OUT/ROW/seedS/test seed=S SETS [the same]

and the measurement of the trained network (GFLOPs and parameters at the training input size,
from ``best.pt``'s own architecture, with :mod:`autopose.models.flops`). The search's cost is
the user + system CPU time of its process (``os.wait4``: data-loader workers included),
training's is measured the same way.

**Resumable.** Each (row, seed, stage) writes a marker (``search.json``, ``train.json``,
``test.json``, ``result.json`` in ``OUT/ROW/seedS/``, atomically) when it is done, and is skipped
when the study runs again; a stage killed half-way is run again, with ``--resume`` when its run
folder holds a checkpoint (a search's ``checkpoint.pt``, a training's ``last.pt``). A search's
``checkpoint.pt`` (the supernet with both Adam states: 380 MB in the default setting) is
deleted once the search is done, unless ``--keep-search-checkpoints``. Rerunning a finished
study only re-aggregates; a marker made by another command (other ``--set`` overrides, say,
in the same ``--out``) stops the study rather than mix two settings in one table. The time of
a stage that was interrupted is that of its last, resumed attempt only (its marker then says
``resumed: true``): the killed attempt's CPU time died with it.

**Outputs** in ``--out``: ``results.jsonl`` (one line per row and seed), ``table.md`` (per row:
mean +- sample std over seeds of AP, AP .5, GFLOPs, parameters, search and training
CPU-minutes; the number of seeds), ``study.json`` (the aggregate, every command run, the
machine, date and git commit), and ``study.png`` (AP per row with error bars; AP against
GFLOPs). The aggregate covers the rows and seeds of the command line.

Commands (from the repository root)::

    # The whole study: 3 seeds x 7 rows on the built-in set. On a quiet 2-core CPU about
    # 3.5-4 hours: 18 searches of about 7 min (BENCHMARKS.md), 21 trainings of about 4 min
    # (docs/training.md; HRNet at the matched width trains as fast), 21 tests of seconds.
    .venv/bin/python bench/study.py --out runs/study
    # Some rows, other seeds, on the easy level of the synthetic set:
    .venv/bin/python bench/study.py --rows autopose random hrnet_w32 --seeds 0 1 \\
        --set data.synthetic.level=easy
    # The same code path on tiny settings (about 3 minutes on one core: 40 processes of
    # 2-7 s, mostly start-up; its own data cache under --out):
    .venv/bin/python bench/study.py --quick --out /tmp/study-quick

Bad options stop with one line and exit code 2; a stage that fails stops the study with the
tail of its log (exit code 2 when the stage itself reported bad input, 1 otherwise).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autopose.config import CONFIG_DIR, load_config
from autopose.errors import UserError
from autopose.io import git_commit, read_json, restart_unfinished, write_json, write_text

ROWS: tuple[str, ...] = ("autopose", "random", "single_branch", "concat", "all_branches",
                         "small_input", "hrnet_w32")
BASELINE = "hrnet_w32"
# The row whose derived networks set the FLOPs the width-reduced HRNet is matched to.
REFERENCE_ROW = "autopose"
# The built-in synthetic set has COCO's 17 joints; the head's 1x1 conv is a negligible share
# of the FLOPs anyway, so the HRNet match does not depend on it.
NUM_JOINTS = 17
# HRNet width multipliers tried for the FLOPs match: 0.02 .. 1.0 in steps of 0.005 (below
# 0.02 most channel counts are already clamped to one).
WIDTH_GRID: tuple[float, ...] = tuple(round(0.02 + 0.005 * i, 3) for i in range(197))

# --quick: tiny settings on the same code path. The data overrides go to every stage so that
# search, training and test share one generated set (the cache key is these settings).
QUICK_DATA = ["data.synthetic.num_train=24", "data.synthetic.num_val=8",
              "data.synthetic.image_size=[160,120]", "data.workers=0"]
QUICK_SEARCH = ["search.epochs=1", "search.iters_per_epoch=2", "search.batch_size=4",
                "search.controller.start_epoch=0", "search.controller.updates_per_epoch=1",
                "search.controller.archs_per_update=2",
                "search.derive_samples=1", "search.input_size=[64,48]",
                "search.checkpoint_every=0", "search.reward_fraction=0.1",
                # A small supernet (narrow, one module per stage): a search in about 5 s
                # instead of 9 s, its checkpoint 15 MB instead of 190 MB.
                "model.branch_channels=[4,8,12,16]", "model.stem_channels=8",
                "model.modules_per_stage=1"]
QUICK_TRAIN = ["data.input_size=[64,48]", "train.epochs=1", "train.batch_size=4",
               "train.lr_steps=[]"]
QUICK_SEEDS = [0, 1]
QUICK_SMALL_INPUT = (48, 36)  # 3/4 of the quick training input, as 96x72 is of 128x96
DEFAULT_SMALL_INPUT = (96, 72)


class StageFailed(Exception):
    """A stage's process ended with a non-zero exit code (the study stops)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------------------- options


@dataclass
class Plan:
    """What the study runs: the options resolved, plus the overrides of each kind of stage."""

    out: Path
    seeds: list[int]
    rows: list[str]
    search_config: Path
    train_config: Path
    sets: list[str]
    small_input: tuple[int, int]
    quick: bool
    keep_search_checkpoints: bool
    search_overrides: list[str] = field(default_factory=list)
    train_overrides: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def _input_size(text: str) -> tuple[int, int]:
    """argparse type of ``--small-input``: ``"96x72"`` -> ``(96, 72)`` (height, width)."""
    m = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 96x72, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _override(text: str) -> str:
    """argparse type of ``--set``: a ``key=value`` config override."""
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return text


def _seed(text: str) -> int:
    """argparse type of ``--seeds``: a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``bench/study.py``."""
    p = argparse.ArgumentParser(
        prog="bench/study.py",
        description="AutoPose tables 4 and 5 at laptop scale: search, train and test each row "
                    "for each seed on the built-in synthetic set (resumable).")
    p.add_argument("--out", type=Path, default=Path("runs/study"), help="study folder")
    p.add_argument("--seeds", type=_seed, nargs="+", default=None,
                   help="seeds (default 0 1 2; 0 1 with --quick)")
    p.add_argument("--rows", nargs="+", choices=ROWS, default=None,
                   help="a subset of the rows (default all)")
    p.add_argument("--search-config", type=Path,
                   default=CONFIG_DIR / "synthetic" / "default.yaml",
                   help="config of every search (default configs/synthetic/default.yaml)")
    p.add_argument("--train-config", type=Path,
                   default=CONFIG_DIR / "synthetic" / "train_short.yaml",
                   help="config of every training and test "
                        "(default configs/synthetic/train_short.yaml)")
    p.add_argument("--set", dest="sets", type=_override, nargs="+", default=[],
                   metavar="KEY=VALUE",
                   help="overrides given to every search, train and test, "
                        "e.g. data.synthetic.level=easy")
    p.add_argument("--small-input", type=_input_size, default=None, metavar="HxW",
                   help="search input of the small_input row (default 96x72; 48x36 with "
                        "--quick)")
    p.add_argument("--quick", action="store_true",
                   help="tiny settings on the same code path (a few minutes on one core)")
    p.add_argument("--keep-search-checkpoints", action="store_true",
                   help="keep each finished search's checkpoint.pt (deleted by default)")
    return p


def make_plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    """Resolve the options; a bad one is an argparse error (one line, exit code 2)."""
    seeds = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else [0, 1, 2])
    if len(set(seeds)) != len(seeds):
        parser.error(f"--seeds: a seed is given twice: {seeds}")
    rows = list(ROWS) if args.rows is None else [r for r in ROWS if r in args.rows]
    for flag, path in (("--search-config", args.search_config),
                       ("--train-config", args.train_config)):
        if not path.is_file():
            parser.error(f"{flag}: {path}: no such file")
    # Absolute paths: the commands recorded in the markers must not depend on the directory
    # the study was started from (a rerun compares them).
    search_config, train_config = args.search_config.resolve(), args.train_config.resolve()
    small = args.small_input or (QUICK_SMALL_INPUT if args.quick else DEFAULT_SMALL_INPUT)
    out = args.out.resolve()
    env = dict(os.environ)
    search_ov, train_ov = list(args.sets), list(args.sets)
    if args.quick:
        # Quick runs keep their generated set under --out: the user's cache stays untouched,
        # and one core is what the quick study is sized for.
        env["AUTOPOSE_CACHE"] = str(out / "cache")
        env["OMP_NUM_THREADS"] = "1"
        # The quick settings come first, so that --set can still change any of them.
        search_ov = QUICK_DATA + QUICK_SEARCH + search_ov
        train_ov = QUICK_DATA + QUICK_TRAIN + train_ov
    return Plan(out=out, seeds=list(seeds), rows=rows, search_config=search_config,
                train_config=train_config, sets=list(args.sets), small_input=small,
                quick=args.quick, keep_search_checkpoints=args.keep_search_checkpoints,
                search_overrides=search_ov, train_overrides=train_ov, env=env)


def check_overrides(plan: Plan) -> None:
    """Load both configs with their overrides in this process (no data is read), so that an
    unknown key or a bad value stops the study before any stage runs."""
    for row in plan.rows:
        if row != BASELINE:
            load_config(plan.search_config, plan.search_overrides + row_search_overrides(plan, row))
    load_config(plan.train_config, plan.train_overrides)


# ---------------------------------------------------------------------------- rows


def row_strategy(row: str) -> str:
    """The ``--strategy`` of a searched row."""
    return "random" if row == "random" else "autopose"


def row_search_overrides(plan: Plan, row: str) -> list[str]:
    """What a row changes in the search (after --set, so the row's definition wins)."""
    h, w = plan.small_input
    return {"single_branch": ["search.single_branch=true"],
            "concat": ["model.aggregation=concat"],
            "all_branches": ["search.branches=all"],
            "small_input": [f"search.input_size=[{h},{w}]"]}.get(row, [])


def seed_dir(plan: Plan, row: str, seed: int) -> Path:
    return plan.out / row / f"seed{seed}"


# ---------------------------------------------------------------------------- processes


@dataclass
class Counter:
    """Stages run and skipped in this invocation (printed at the end; a resumed finished
    study runs none)."""

    ran: int = 0
    skipped: int = 0


def autopose_argv(*args: str) -> list[str]:
    """``python -m autopose ARGS``, with this interpreter (the study's virtual env)."""
    return [sys.executable, "-m", "autopose", *args]


def run_process(argv: list[str], log: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run one stage as a fresh process, its output appended to ``log``.

    Returns ``exit_code``, ``wall_s`` and ``cpu_s``: user + system CPU time from
    ``os.wait4``, which counts the process and every child it waited for (data loaders).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "ab") as f:
        f.write(f"\n$ {shlex.join(argv)}\n".encode())
        f.flush()
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            # Interrupted (Ctrl-C reaches the child too): do not leave it running.
            proc.kill()
            proc.wait()
            raise
    # wait4 reaped the child: tell Popen, so that it never waits for the pid again.
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"exit_code": proc.returncode, "wall_s": time.monotonic() - start,
            "cpu_s": usage.ru_utime + usage.ru_stime}


def _log_tail(log: Path, lines: int = 15) -> str:
    """The last lines of a stage's log, progress bars' carriage returns folded."""
    text = log.read_text(errors="replace").replace("\r", "\n")
    kept = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def run_stage(plan: Plan, argv: list[str], log: Path, what: str) -> dict[str, Any]:
    """Run a stage, print one line about it, and raise StageFailed when it fails."""
    print(f"study: {what} ...", flush=True)
    result = run_process(argv, log, plan.env)
    if result["exit_code"] != 0:
        code = result["exit_code"]
        raise StageFailed(f"{what} failed (exit code {code}); log {log}; command:\n  "
                          f"{shlex.join(argv)}\n{_log_tail(log)}", 2 if code == 2 else 1)
    print(f"study: {what}: {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU",
          flush=True)
    return result


def stage_record(argv: list[str], runs: list[dict[str, Any]], resumed: bool) -> dict[str, Any]:
    """The marker of a finished process stage: its command and costs over its attempts."""
    return {"argv": argv, "command": shlex.join(argv), "resumed": resumed,
            "wall_s": sum(r["wall_s"] for r in runs), "cpu_s": sum(r["cpu_s"] for r in runs),
            "finished_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


# ---------------------------------------------------------------------------- stages


def done_before(marker: Path, argv: list[str], counter: Counter) -> dict[str, Any] | None:
    """The marker of a stage finished by an earlier run of the same command, else None.

    A marker made by another command (other --set overrides, configs or seeds in the same
    --out) is an error: reusing it would mix two settings in one table.
    """
    if not marker.exists():
        return None
    rec = read_json(marker, "study record")
    # The interpreter may be named differently between runs; --resume is how, not what.
    before = [a for a in rec["argv"][1:] if a != "--resume"]
    now = argv[1:]
    if before != now:
        n = min(len(before), len(now))
        diff = next((f"{a!r} then, {b!r} now" for a, b in zip(before, now) if a != b),
                    f"now also {shlex.join(now[n:])}" if len(now) > n
                    else f"then also {shlex.join(before[n:])}")
        raise UserError(f"{marker}: made by another command ({diff}); give another --out, "
                        f"or delete {marker.parent} to redo it")
    counter.skipped += 1
    return rec


def search_stage(plan: Plan, row: str, seed: int, counter: Counter) -> dict[str, Any]:
    """``autopose search`` for (row, seed) -> its marker (genotype path, CPU-minutes)."""
    d = seed_dir(plan, row, seed)
    marker, run = d / "search.json", d / "search"
    checkpoint = run / "checkpoint.pt"
    argv = autopose_argv("search", "--config", str(plan.search_config), "--out", str(run),
                         "--seed", str(seed), "--strategy", row_strategy(row),
                         *plan.search_overrides, *row_search_overrides(plan, row))
    rec = done_before(marker, argv, counter)
    if rec is None:
        # A killed search left its checkpoint: continue it (the same command plus --resume);
        # one killed before its first checkpoint starts again.
        resumed = restart_unfinished(run, checkpoint.name, "study")
        if resumed:
            argv.append("--resume")
        result = run_stage(plan, argv, d / "search.log",
                           f"{row} seed {seed}: search{' (resumed)' if resumed else ''}")
        counter.ran += 1
        genotype = run / "genotype.json"
        if not genotype.is_file():
            raise StageFailed(f"{row} seed {seed}: search ended without {genotype}", 1)
        rec = stage_record(argv, [result], resumed) | {
            "genotype": str(genotype),
            "cpu_min": result["cpu_s"] / 60.0,
            "scale_vectors": read_json(genotype, "genotype").get("scale_vectors")}
        write_json(marker, rec)
    # Only resuming needs the checkpoint (also cleans up after a study killed just before).
    if checkpoint.exists() and not plan.keep_search_checkpoints:
        checkpoint.unlink()
    return rec


def train_stage(plan: Plan, row: str, seed: int, arch_args: list[str], extra: list[str],
                counter: Counter) -> dict[str, Any]:
    """``autopose train`` of a genotype or a baseline -> its marker (wall and CPU time)."""
    d = seed_dir(plan, row, seed)
    marker, run = d / "train.json", d / "train"
    argv = autopose_argv("train", "--config", str(plan.train_config), *arch_args,
                         "--out", str(run), f"seed={seed}", *plan.train_overrides, *extra)
    rec = done_before(marker, argv, counter)
    if rec is not None:
        return rec
    # A killed training left last.pt: continue it (the same command plus --resume).
    resumed = restart_unfinished(run, "last.pt", "study")
    if resumed:
        argv.append("--resume")
    result = run_stage(plan, argv, d / "train.log",
                       f"{row} seed {seed}: train{' (resumed)' if resumed else ''}")
    counter.ran += 1
    if not (run / "best.pt").is_file():
        raise StageFailed(f"{row} seed {seed}: training ended without {run / 'best.pt'}", 1)
    rec = stage_record(argv, [result], resumed)
    write_json(marker, rec)
    return rec


def test_stage(plan: Plan, row: str, seed: int, extra: list[str],
               counter: Counter) -> dict[str, Any]:
    """``autopose test`` of the trained network's best.pt -> its marker (AP, AP .5)."""
    d = seed_dir(plan, row, seed)
    marker, run = d / "test.json", d / "test"
    argv = autopose_argv("test", "--checkpoint", str(d / "train" / "best.pt"),
                         "--config", str(plan.train_config), "--out", str(run),
                         f"seed={seed}", *plan.train_overrides, *extra)
    rec = done_before(marker, argv, counter)
    if rec is not None:
        return rec
    restart_unfinished(run, None, "study")  # a test is run again whole
    result = run_stage(plan, argv, d / "test.log", f"{row} seed {seed}: test")
    counter.ran += 1
    metrics = read_json(run / "metrics.json", "test metrics")
    rec = stage_record(argv, [result], False) | {"AP": float(metrics["AP"]),
                                                 "AP50": float(metrics["AP .5"])}
    write_json(marker, rec)
    return rec


# ---------------------------------------------------------------------------- FLOPs


def arch_cost(arch: dict[str, Any], input_hw: tuple[int, int]) -> tuple[int, int]:
    """``(MACs, parameters)`` of the network an ``arch`` entry describes, at ``input_hw``.

    Built on the meta device: shapes only, no weights and no arithmetic.
    """
    import torch

    from autopose.models.build import build_model
    from autopose.models.flops import count_macs, count_params

    with torch.device("meta"):
        net = build_model(arch)
    return count_macs(net, input_hw, device="meta"), count_params(net)


def checkpoint_cost(path: Path) -> dict[str, Any]:
    """GFLOPs and parameters of a checkpoint's network at its own training input size."""
    from autopose.engine.checkpoint import read_checkpoint
    from autopose.models.build import describe_arch

    ckpt = read_checkpoint(path)
    hw = tuple(int(v) for v in ckpt["config"]["data"]["input_size"])
    macs, params = arch_cost(ckpt["arch"], hw)  # type: ignore[arg-type]
    return {"gflops": macs / 1e9, "params": params, "params_m": params / 1e6,
            "input_size": list(hw), "network": describe_arch(ckpt["arch"]),
            "width_mult": float(ckpt["arch"].get("width_mult", 1.0))}


def derived_macs(plan: Plan, genotype: Path, seed: int) -> tuple[int, tuple[int, int]]:
    """MACs of the network ``autopose train`` builds from ``genotype`` with the training
    config (its ``train.width_mult``), at the training input size; and that size."""
    from autopose.models.build import ArchSource, resolve_arch

    cfg = load_config(plan.train_config, [f"seed={seed}", *plan.train_overrides])
    hw = (int(cfg.data.input_size[0]), int(cfg.data.input_size[1]))
    arch = resolve_arch(ArchSource(genotype=genotype), cfg, NUM_JOINTS)
    return arch_cost(arch, hw)[0], hw


def match_hrnet_width(target_macs: float, input_hw: tuple[int, int]) -> tuple[float, int]:
    """The multiplier of WIDTH_GRID whose HRNet-W32 MACs are closest to ``target_macs``.

    MACs never decrease with the multiplier (every channel count is a non-decreasing
    function of it), so a bisection finds the grid point in about 8 counts instead of 197.
    """
    from autopose.models.build import arch_for_baseline

    cache: dict[int, int] = {}

    def macs(i: int) -> int:
        if i not in cache:
            cache[i] = arch_cost(arch_for_baseline(BASELINE, NUM_JOINTS, WIDTH_GRID[i]),
                                 input_hw)[0]
        return cache[i]

    lo, hi = 0, len(WIDTH_GRID) - 1
    if macs(hi) <= target_macs:
        return WIDTH_GRID[hi], macs(hi)
    if macs(lo) >= target_macs:
        return WIDTH_GRID[lo], macs(lo)
    while hi - lo > 1:  # invariant: macs(lo) < target <= macs(hi)
        mid = (lo + hi) // 2
        if macs(mid) >= target_macs:
            hi = mid
        else:
            lo = mid
    best = min((lo, hi), key=lambda i: abs(macs(i) - target_macs))
    return WIDTH_GRID[best], macs(best)


def hrnet_width_stage(plan: Plan, counter: Counter) -> dict[str, Any]:
    """The HRNet width matched to the reference row's mean derived FLOPs (``width.json``).

    Needs the reference row's searches for the study's seeds (run here when that row is
    not among --rows). Kept once made, for the same genotypes and training setting only.
    """
    # The reference row's searches are this invocation's own work only when that row is
    # not among --rows (otherwise they were counted as its stages already).
    dep = counter if REFERENCE_ROW not in plan.rows else Counter()
    genotypes = [search_stage(plan, REFERENCE_ROW, seed, dep)["genotype"]
                 for seed in plan.seeds]
    made_from = {"reference_row": REFERENCE_ROW, "reference_seeds": plan.seeds,
                 "genotypes": genotypes, "train_config": str(plan.train_config),
                 "train_overrides": plan.train_overrides}
    marker = plan.out / BASELINE / "width.json"
    if marker.exists():
        rec = read_json(marker, "study record")
        if rec["made_from"] != made_from:
            raise UserError(f"{marker}: matched to other {REFERENCE_ROW} networks (seeds "
                            f"{rec['made_from']['reference_seeds']} or another training "
                            f"setting); delete {marker.parent} to redo the {BASELINE} row")
        counter.skipped += 1
        return rec
    per_seed = []
    for seed, genotype in zip(plan.seeds, genotypes):
        macs, hw = derived_macs(plan, Path(genotype), seed)
        per_seed.append(macs)
    target = statistics.fmean(per_seed)
    print(f"study: {BASELINE}: matching {target / 1e9:.4f} GFLOPs at {hw[0]}x{hw[1]} ...",
          flush=True)
    width, macs = match_hrnet_width(target, hw)
    counter.ran += 1
    rec = {"made_from": made_from, "reference_gflops": [m / 1e9 for m in per_seed],
           "target_gflops": target / 1e9, "input_size": list(hw), "width_mult": width,
           "gflops": macs / 1e9, "grid": [WIDTH_GRID[0], WIDTH_GRID[-1], 0.005]}
    write_json(marker, rec)
    print(f"study: {BASELINE}: width_mult {width:g} ({macs / 1e9:.4f} GFLOPs)", flush=True)
    return rec


# ---------------------------------------------------------------------------- one cell


def run_cell(plan: Plan, row: str, seed: int, hrnet: dict[str, Any] | None,
             counter: Counter) -> dict[str, Any]:
    """Every stage of (row, seed), then its record (``result.json``)."""
    d = seed_dir(plan, row, seed)
    search: dict[str, Any] | None = None
    ran_before = counter.ran
    if row == BASELINE:
        assert hrnet is not None
        arch_args = ["--model", BASELINE]
        extra = [f"train.width_mult={hrnet['width_mult']}"]
    else:
        search = search_stage(plan, row, seed, counter)
        arch_args, extra = ["--genotype", search["genotype"]], []
    train = train_stage(plan, row, seed, arch_args, extra, counter)
    test = test_stage(plan, row, seed, extra, counter)
    marker = d / "result.json"
    # The record is kept only while none of the stages it summarises was redone.
    if marker.exists() and counter.ran == ran_before:
        counter.skipped += 1
        return read_json(marker, "study record")
    cost = checkpoint_cost(d / "train" / "best.pt")
    rec = {"row": row, "seed": seed, "AP": test["AP"], "AP50": test["AP50"], **cost,
           "search_cpu_min": None if search is None else search["cpu_min"],
           "search_wall_s": None if search is None else search["wall_s"],
           "search_resumed": None if search is None else search["resumed"],
           "scale_vectors": None if search is None else search["scale_vectors"],
           "train_wall_s": train["wall_s"], "train_cpu_s": train["cpu_s"],
           "test_wall_s": test["wall_s"], "dir": str(d)}
    write_json(marker, rec)
    return rec


# ---------------------------------------------------------------------------- aggregate


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(results: list[dict[str, Any]], rows: list[str]) -> list[dict[str, Any]]:
    """Per row: mean and std over seeds of each measured quantity, and the seed count."""
    out = []
    for row in rows:
        rs = [r for r in results if r["row"] == row]
        entry: dict[str, Any] = {"row": row, "n": len(rs), "seeds": [r["seed"] for r in rs]}
        for key, value in (("AP", lambda r: r["AP"]), ("AP50", lambda r: r["AP50"]),
                           ("gflops", lambda r: r["gflops"]),
                           ("params_m", lambda r: r["params_m"]),
                           ("search_cpu_min", lambda r: r["search_cpu_min"]),
                           ("train_cpu_min", lambda r: r["train_cpu_s"] / 60.0)):
            vals = [float(value(r)) for r in rs if value(r) is not None]
            m, s = mean_std(vals)
            entry[key] = {"mean": m, "std": s} if vals else None
        out.append(entry)
    return out


def _cell(stat: dict[str, float] | None, digits: int) -> str:
    return "-" if stat is None else f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def format_table(agg: list[dict[str, Any]]) -> str:
    """The Markdown table: one line per row."""
    lines = ["| row | AP | AP .5 | GFLOPs | params (M) | search CPU-min | train CPU-min | n |",
             "|---|---|---|---|---|---|---|---|"]
    for a in agg:
        lines.append(f"| {a['row']} | {_cell(a['AP'], 4)} | {_cell(a['AP50'], 4)} | "
                     f"{_cell(a['gflops'], 4)} | {_cell(a['params_m'], 3)} | "
                     f"{_cell(a['search_cpu_min'], 2)} | {_cell(a['train_cpu_min'], 2)} | "
                     f"{a['n']} |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], agg: list[dict[str, Any]], path: Path) -> None:
    """``study.png``: AP per row (mean +- std) and AP against GFLOPs (each seed, and means)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autopose.io import atomic_write

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [a["row"] for a in agg]
    colors = {row: plt.get_cmap("tab10")(i % 10) for i, row in enumerate(ROWS)}
    means = [a["AP"]["mean"] if a["AP"] else 0.0 for a in agg]
    stds = [a["AP"]["std"] if a["AP"] else 0.0 for a in agg]
    ax1.bar(range(len(names)), means, yerr=stds, capsize=4,
            color=[colors[n] for n in names])
    ax1.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax1.set_ylim(bottom=0)
    ax1.set_ylabel("test AP (mean ± std over seeds)")
    ax1.set_title("AP per row")
    for a in agg:
        rs = [r for r in results if r["row"] == a["row"]]
        if not rs:
            continue
        ax2.scatter([r["gflops"] for r in rs], [r["AP"] for r in rs], color=colors[a["row"]],
                    alpha=0.5, s=20)
        ax2.errorbar(a["gflops"]["mean"], a["AP"]["mean"], xerr=a["gflops"]["std"],
                     yerr=a["AP"]["std"], fmt="o", color=colors[a["row"]], capsize=3,
                     markersize=7, label=f"{a['row']} (n={a['n']})")
    ax2.set_xlabel("GFLOPs at the training input size")
    ax2.set_ylim(bottom=0)
    ax2.set_ylabel("test AP")
    ax2.set_title("AP against GFLOPs (dots: seeds; markers: means)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def collect_commands(plan: Plan) -> list[dict[str, Any]]:
    """Every command of the study's stages, from their markers (also those of earlier runs)."""
    commands = []
    for row in plan.rows:
        for seed in plan.seeds:
            for stage in ("search", "train", "test"):
                marker = seed_dir(plan, row, seed) / f"{stage}.json"
                if marker.exists():
                    commands.append({"row": row, "seed": seed, "stage": stage,
                                     "command": read_json(marker, "study record")["command"]})
    return commands


def write_outputs(plan: Plan, results: list[dict[str, Any]],
                  hrnet: dict[str, Any] | None, argv: list[str]) -> str:
    """results.jsonl, table.md, study.json and study.png; returns the table."""
    agg = aggregate(results, plan.rows)
    table = format_table(agg)
    write_text(plan.out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in results))
    write_text(plan.out / "table.md", table)
    write_json(plan.out / "study.json", {
        "rows": agg, "hrnet_width": hrnet, "seeds": plan.seeds,
        "options": {"search_config": str(plan.search_config),
                    "train_config": str(plan.train_config), "set": plan.sets,
                    "small_input": list(plan.small_input), "quick": plan.quick,
                    "search_overrides": plan.search_overrides,
                    "train_overrides": plan.train_overrides},
        "study_command": shlex.join([sys.executable, *argv]),
        "commands": collect_commands(plan),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "OMP_NUM_THREADS": plan.env.get("OMP_NUM_THREADS")},
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "conventions": "std: sample standard deviation over seeds (0 for one seed); GFLOPs: "
                       "multiply-accumulates / 1e9 at the training input size; CPU time: "
                       "user + system of the stage's process and its children"})
    plot(results, agg, plan.out / "study.png")
    return table


# ---------------------------------------------------------------------------- main


def run_study(plan: Plan, argv: list[str]) -> str:
    """Run (or resume) every stage, then aggregate; returns the table."""
    counter = Counter()
    start = time.monotonic()
    results = []
    # Seed by seed, so that an interrupted study already has whole seeds to compare.
    searched = [r for r in plan.rows if r != BASELINE]
    for seed in plan.seeds:
        for row in searched:
            results.append(run_cell(plan, row, seed, None, counter))
    hrnet = None
    if BASELINE in plan.rows:
        hrnet = hrnet_width_stage(plan, counter)
        for seed in plan.seeds:
            results.append(run_cell(plan, BASELINE, seed, hrnet, counter))
    order = {row: i for i, row in enumerate(ROWS)}
    results.sort(key=lambda r: (order[r["row"]], r["seed"]))
    table = write_outputs(plan, results, hrnet, argv)
    print(f"study: {counter.ran} stages run, {counter.skipped} skipped (done before), "
          f"{time.monotonic() - start:.0f} s; outputs in {plan.out}")
    return table


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so that the running stage's process is killed
    with the study instead of running on beside a resumed study."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    parser = build_parser()
    plan = make_plan(parser.parse_args(argv[1:]), parser)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        check_overrides(plan)
        table = run_study(plan, argv)
    except UserError as e:
        print(f"study: error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(f"study: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("study: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
