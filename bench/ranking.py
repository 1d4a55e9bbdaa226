"""Does the search's reward predict trained AP? Kendall tau of shared-weight rewards against
the AP of the same architectures trained from scratch, next to the tau of their parameter
count and of their FLOPs (NAS studies find #params a strong ranker: the baselines to beat).

From a finished built-in search (``autopose search --out RUN``; ``autopose study`` deletes a
search's ``checkpoint.pt`` unless ``--keep-search-checkpoints``), this takes ``--archs``
architectures that share the searched cells (``BilevelSearch.current``): index 0 the
derived one (the scale vectors of ``RUN/genotype.json``), then distinct uniform draws of the
network-level scale vectors (``uniform_scale_vectors``, a generator seeded with ``--seed``;
draws equal to an earlier architecture are skipped). Each is

1. rewarded in this process, exactly as the search rewards it: ``BilevelSearch.evaluate``
   with RUN's final weights (``checkpoint.pt``), its config (``config.yaml``) and its reward
   set; the search object's folder is ``OUT/supernet``, so nothing is written into RUN;
   ``OUT/arch_XX/genotype.json`` is ``BilevelSearch.genotype`` of the architecture;
2. trained from scratch and tested, each a fresh process as in ``autopose study``
   (``S`` the seed, ``SETS`` the ``--set`` overrides; ``--jobs K`` architectures at once)::

       python -m autopose train --config TRAIN_CFG --genotype OUT/arch_XX/genotype.json
           --out OUT/arch_XX/train seed=S SETS
       python -m autopose test --checkpoint OUT/arch_XX/train/best.pt --config TRAIN_CFG
           --out OUT/arch_XX/test seed=S SETS

3. measured: parameters and GFLOPs (MACs / 1e9) of the trained network at the training
   input size and width (``best.pt``'s own architecture, as ``autopose study`` measures).

Statistics over the architectures: Kendall tau-b (``scipy.stats.kendalltau``) of reward,
parameters and GFLOPs against test AP, each with a 95 % percentile-bootstrap interval
(``--bootstrap`` resamples of the architectures with replacement, the same resamples for
all three, seeded with ``--seed``; a resample where a tau is undefined, one variable
constant, is skipped for that tau); the paired bootstrap interval of tau(reward) minus
tau(params) and minus tau(GFLOPs) (above 0: the reward ranks better than the baseline);
Spearman rho as a side figure. A tau is null when AP (or the ranker) is the same for every
architecture.

**Resumable** as ``autopose study``: ``OUT/rewards.json`` (the architectures and their
rewards; made again when ``--archs`` changes, the sampled sequence being the same prefix),
and ``train.json``, ``test.json``, ``result.json`` in ``OUT/arch_XX/`` are written atomically
when a stage is done and honoured on a rerun; a training killed half-way continues with
``--resume`` from its ``last.pt``. A marker made by another command (other overrides, another
search run or seed, another architecture in ``arch_XX``) stops the run. CPU time of every
stage: ``os.wait4`` of its process (user + system, children included; of a resumed stage,
its last attempt only, as in ``autopose study``); the rewards, the CPU time of this process.

RUN is read with the code of this checkout: where it reads RUN's ``config.yaml`` otherwise
than the search did (a config field added since, at its default), the difference is printed
and recorded (``search_config_changes``) and the weights are loaded anyway; a field removed
since, or a supernet whose weights no longer fit, is a one-line error.

**Outputs** in ``--out``: ``ranking.json`` (per architecture: scale vectors, reward, AP,
parameters, GFLOPs, CPU seconds; the taus with their intervals; the search run, its
config's seed; commit, machine, date, versions; every command run), ``ranking.md`` (a table
and the taus), ``ranking.png`` (AP against reward, parameters and GFLOPs, the derived
architecture marked), and the summary printed at the end.

Commands (from the repository root)::

    # 16 architectures trained with the benchmark recipe (not timed here: one training of
    # train_short.yaml takes about 4 min on a quiet 2-core CPU, docs/training.md; --jobs 2
    # runs two at once, each on one torch thread), after a minute or so of rewards.
    .venv/bin/python bench/ranking.py --search runs/demo/search --out runs/ranking
    # The same code path on tiny settings (a generated set under --out, 8 epochs at 64x48):
    .venv/bin/python bench/ranking.py --search RUN --out /tmp/ranking-quick --quick

Bad options, and a RUN without ``config.yaml``, ``checkpoint.pt`` or ``genotype.json``,
stop with one line and exit code 2; a stage that fails stops the run with the tail of its
log (exit code 2 when the stage itself reported bad input, 1 otherwise).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autopose.config import CONFIG_DIR, dump_config, load_config
from autopose.errors import UserError
from autopose.io import read_json, restart_unfinished, run_record, write_json, write_text
from autopose.study.commands import CommandForm, autopose_argv
from autopose.study.cost import checkpoint_cost
from autopose.study.options import override
from autopose.study.processes import Processes, StageFailed, run_driver, run_stage
from autopose.study.rows import QUICK_DATA
from autopose.study.schedule import Task, run_tasks
from autopose.study.stages import Counter, done_before, stage_record

MIN_ARCHS = 16
QUICK_MIN_ARCHS = 3  # below 3 a rank correlation says nothing
QUICK_ARCHS = 4
# --quick: the training recipe on tiny settings (8 epochs at 64x48 in a few seconds: enough
# for architectures to reach different, non-zero APs on an easy set). QUICK_DATA (a small
# synthetic set in OUT/cache) comes first, then these, then --set, which can change any.
QUICK_TRAIN = ["data.input_size=[64,48]", "train.epochs=8", "train.batch_size=8",
               "train.lr_steps=[]", "train.val_every=8", "train.checkpoint_every=0"]
BOOTSTRAP = 2000
RANKERS = (("reward", "reward (shared weights)"), ("params", "parameters"),
           ("gflops", "GFLOPs"))


# ---------------------------------------------------------------------------- options


@dataclass
class Plan:
    search: Path
    out: Path
    archs: int
    jobs: int
    seed: int
    bootstrap: int
    train_config: Path
    sets: list[str]
    quick: bool
    train_overrides: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/ranking.py",
        description="Kendall tau of a search's shared-weight rewards against the AP of the "
                    "same architectures trained from scratch, next to #params and FLOPs.")
    p.add_argument("--search", type=Path, required=True,
                   help="a finished search run folder (config.yaml, checkpoint.pt, "
                        "genotype.json)")
    p.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    p.add_argument("--archs", type=_count(1), default=None,
                   help=f"architectures, the derived one included (default and minimum "
                        f"{MIN_ARCHS}; with --quick default {QUICK_ARCHS}, minimum "
                        f"{QUICK_MIN_ARCHS})")
    p.add_argument("--jobs", type=_count(1), default=2,
                   help="architectures trained at once (default 2)")
    p.add_argument("--seed", type=_count(0), default=0,
                   help="seed of the sampled architectures, of every training and of the "
                        "bootstrap (default 0)")
    p.add_argument("--bootstrap", type=_count(100), default=BOOTSTRAP,
                   help=f"bootstrap resamples (default {BOOTSTRAP})")
    p.add_argument("--train-config", type=Path,
                   default=CONFIG_DIR / "synthetic" / "train_short.yaml",
                   help="config of every training and test "
                        "(default configs/synthetic/train_short.yaml)")
    p.add_argument("--set", dest="sets", type=override, nargs="+", default=[],
                   metavar="KEY=VALUE", help="overrides given to every training and test")
    p.add_argument("--quick", action="store_true",
                   help="tiny training settings, fewer architectures allowed (for the test)")
    return p


def make_plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    minimum = QUICK_MIN_ARCHS if args.quick else MIN_ARCHS
    archs = args.archs if args.archs is not None else (QUICK_ARCHS if args.quick else MIN_ARCHS)
    if archs < minimum:
        parser.error(f"--archs: at least {minimum}{'' if args.quick else ' (or --quick)'}, "
                     f"got {archs}")
    if not args.train_config.is_file():
        parser.error(f"--train-config: {args.train_config}: no such file")
    out = args.out.resolve()
    env = dict(os.environ)
    overrides = list(args.sets)
    if args.quick:
        env["AUTOPOSE_CACHE"] = str(out / "cache")
        env["OMP_NUM_THREADS"] = "1"
        overrides = QUICK_DATA + QUICK_TRAIN + overrides
    return Plan(search=args.search.resolve(), out=out, archs=archs, jobs=args.jobs,
                seed=args.seed, bootstrap=args.bootstrap,
                train_config=args.train_config.resolve(), sets=list(args.sets),
                quick=args.quick, train_overrides=overrides, env=env)


def check_inputs(plan: Plan) -> None:
    """The search run's files and the training overrides, before anything runs."""
    run = plan.search
    # Rewarded before (a record carried over from another session, the search run gone):
    # the trainings need only the recorded genotypes.
    carried = (plan.out / "rewards.json").is_file()
    if not run.is_dir() and not carried:
        raise UserError(f"--search: {run}: no such folder")
    for name, what in (("config.yaml", "the search's config"),
                       ("checkpoint.pt", "the search's final weights (autopose study deletes "
                                         "it unless --keep-search-checkpoints)"),
                       ("genotype.json", "the derived genotype: has the search finished?")):
        if not (run / name).is_file() and not carried:
            raise UserError(f"{run / name}: not found ({what})")
    load_config(plan.train_config, [f"seed={plan.seed}", *plan.train_overrides])


# ---------------------------------------------------------------------------- processes


# ---------------------------------------------------------------------------- architectures


def arch_name(plan: Plan, i: int) -> str:
    return f"arch_{i:02d}"  # the same name whatever --archs is (a rerun may add some)


def genotype_path(plan: Plan, name: str) -> Path:
    return plan.out / name / "genotype.json"


def space_size(stages: int, branches: int, single_branch: bool) -> int:
    """How many distinct scale vectors ``uniform_scale_vectors`` can draw."""
    return (branches + 1) ** stages if single_branch else 2 ** (stages * branches)


def sample_scale_vectors(first: list[list[int]], n: int, stages: int, branches: int,
                         single_branch: bool, seed: int) -> list[list[list[int]]]:
    """``first``, then uniform draws (a generator seeded with ``seed``) until ``n`` are
    distinct; draws equal to an earlier one are skipped."""
    import torch

    from autopose.search.architectures import key, uniform_scale_vectors

    size = space_size(stages, branches, single_branch)
    if n > size:
        raise UserError(f"--archs: {n} distinct architectures asked for, the search space "
                        f"has {size} scale vectors")
    gen = torch.Generator().manual_seed(seed)
    out = [first]
    seen = {key(torch.tensor(first))}
    while len(out) < n:
        sv = uniform_scale_vectors(stages, branches, single_branch, gen)
        if key(sv) not in seen:
            seen.add(key(sv))
            out.append(sv.int().tolist())
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def rewards_stage(plan: Plan, counter: Counter) -> dict[str, Any]:
    """The architectures, their genotype files and their shared-weight rewards
    (``rewards.json``); made again only when ``--archs`` changed."""
    marker = plan.out / "rewards.json"
    ckpt = plan.search / "checkpoint.pt"
    if marker.exists() and not ckpt.exists():
        # A ranking carried over from another session (its small records committed, the
        # search's 380 MB checkpoint gone): the rewards are recorded and the trainings need
        # only the genotypes, so it resumes from the record.
        rec = read_json(marker, "ranking record")
        if rec["made_from"]["seed"] != plan.seed or len(rec["archs"]) != plan.archs:
            raise UserError(f"{marker}: made with --seed {rec['made_from']['seed']} and "
                            f"--archs {len(rec['archs'])}, and {ckpt} is gone: rerun with "
                            "those")
        print(f"ranking: {ckpt} is gone; resuming from the rewards recorded in {marker}",
              flush=True)
        counter.skipped += 1
        return rec
    made_from = {"search": str(plan.search),
                 "checkpoint_sha256": _sha256(ckpt),
                 "seed": plan.seed}
    if marker.exists():
        rec = read_json(marker, "ranking record")
        if rec["made_from"] != made_from:
            raise UserError(f"{marker}: made from another search run or seed "
                            f"({rec['made_from']['search']}, seed {rec['made_from']['seed']}); "
                            "give another --out")
        if len(rec["archs"]) == plan.archs:
            counter.skipped += 1
            return rec
        print(f"ranking: {len(rec['archs'])} architectures rewarded before, {plan.archs} "
              "now: rewarding again", flush=True)
    rec = {"made_from": made_from} | compute_rewards(plan)
    write_json(marker, rec)
    counter.ran += 1
    return rec


def compute_rewards(plan: Plan) -> dict[str, Any]:
    import torch

    from autopose.search.bilevel import BilevelSearch
    from autopose.search.candidates import Candidate
    from autopose.search.checkpoint import load_search_checkpoint
    from autopose.search_space.genotype import Genotype

    run = plan.search
    cpu0, wall0 = time.process_time(), time.monotonic()
    if plan.quick:
        torch.set_num_threads(1)
    print(f"ranking: loading the search {run} ...", flush=True)
    cfg = load_config(run / "config.yaml")
    ckpt = load_search_checkpoint(run)
    if ckpt is None:
        raise UserError(f"{run / 'checkpoint.pt'}: not found (the search's final weights)")
    strategy = ckpt.get("strategy", "autopose")
    search = BilevelSearch(cfg, plan.out / "supernet", strategy=strategy, progress=False)
    sys.stdout.flush()  # the data loaders' summary lines, before ours
    # A search run on K processes is evaluated here on one: the world-size check guards the
    # data order of a resumed search, which evaluation does not have.
    world_size = ckpt.get("world_size")
    ckpt = dict(ckpt, world_size=None)
    # The checkpoint holds the config its search dumped (config.yaml is the same text), so
    # the two differ only where this code reads that config otherwise: fields added since
    # (at their defaults). Those are recorded and shown rather than refused; a field removed
    # or renamed since already failed in load_config, a changed supernet fails below.
    config_changes = _config_changes(ckpt.get("config"), dump_config(search.cfg))
    if config_changes:
        print(f"ranking: warning: this code reads {run / 'config.yaml'} otherwise than the "
              f"search did: {'; '.join(config_changes)}", file=sys.stderr, flush=True)
        ckpt["config"] = dump_config(search.cfg)
    try:
        search.load_state_dict(ckpt, run / "checkpoint.pt")
    except (UserError, RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise UserError(f"{run}: its checkpoint does not load into a search built from its "
                        f"config.yaml with this code ({first})") from None
    derived = Genotype.load(run / "genotype.json")

    def current(sv: list[list[int]]) -> Candidate:
        return search.current(torch.tensor(sv, dtype=torch.bool))

    make, cells = current, "searched (the supernet's alphas)"
    matches = search.genotype(current(derived.scale_vectors)).to_dict() == derived.to_dict()
    if not matches and strategy == "random":
        # Random search derives its cells from its pool's random alphas, not the supernet's.
        for d in search.state.pool:
            agg = d["alpha_aggregation"]
            c = Candidate(torch.tensor(d["scale_vectors"], dtype=torch.bool),
                          torch.tensor(d["alpha_individual"]),
                          None if agg is None else torch.tensor(agg))
            if search.genotype(c).to_dict() == derived.to_dict():
                def make(sv: list[list[int]], c: Candidate = c) -> Candidate:
                    return Candidate(torch.tensor(sv, dtype=torch.bool), c.alpha_individual,
                                     c.alpha_aggregation)
                cells, matches = "the derived candidate's (random-search pool)", True
                break
    if not matches:
        print(f"ranking: warning: {run / 'genotype.json'} has other cells than the "
              "supernet's alphas derive; every architecture here has the latter",
              file=sys.stderr, flush=True)
    m = search.cfg.model
    svs = sample_scale_vectors(derived.scale_vectors, plan.archs, m.num_stages,
                               len(m.branch_channels), search.cfg.search.single_branch,
                               plan.seed)
    archs = []
    for i, sv in enumerate(svs):
        cand = make(sv)
        t0 = time.process_time()
        reward = float(search.evaluate(cand))
        name = arch_name(plan, i)
        genotype = search.genotype(cand)
        genotype.save(genotype_path(plan, name))
        archs.append({"index": i, "name": name, "derived": i == 0, "scale_vectors": sv,
                      "reward": reward, "reward_cpu_s": time.process_time() - t0,
                      "genotype_dict": genotype.to_dict()})
        print(f"ranking: {name} {_sv(sv)}: reward {reward:.4f}", flush=True)
    return {"strategy": strategy, "reward_kind": search.cfg.search.reward,
            "search_seed": search.cfg.seed, "search_world_size": world_size,
            "config_changes": config_changes,
            "cells": cells, "derived_genotype_reproduced": matches, "archs": archs,
            "cpu_s": time.process_time() - cpu0, "wall_s": time.monotonic() - wall0}


def _config_changes(saved: Any, now: str) -> list[str]:
    """Where the dumped config ``now`` differs from ``saved``, by dotted key: ``added
    search.threads=0``, ``removed ...``, ``key: old -> new``."""
    import yaml

    if not isinstance(saved, str) or saved == now:
        return []

    def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(tree, dict):
            return {prefix.rstrip("."): tree}
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out |= flat(v, f"{prefix}{k}.")
        return out

    a, b = flat(yaml.safe_load(saved)), flat(yaml.safe_load(now))
    changes = []
    for k in sorted(set(a) | set(b)):
        if k not in a:
            changes.append(f"added {k}={b[k]!r}")
        elif k not in b:
            changes.append(f"removed {k}")
        elif a[k] != b[k]:
            changes.append(f"{k}: {a[k]!r} -> {b[k]!r}")
    return changes or ["formatting only"]


def _sv(sv: list[list[int]]) -> str:
    return "/".join("".join(str(int(b)) for b in row) for row in sv)


# ---------------------------------------------------------------------------- one architecture


def train_stage(plan: Plan, arch: dict[str, Any], procs: Processes,
                counter: Counter) -> dict[str, Any]:
    d = plan.out / arch["name"]
    marker, run = d / "train.json", d / "train"
    argv = autopose_argv("train", "--config", str(plan.train_config), "--genotype",
                         str(genotype_path(plan, arch["name"])), "--out", str(run),
                         f"seed={plan.seed}", *plan.train_overrides)
    rec = done_before(marker, argv, counter, CommandForm(plan.out))
    if rec is not None:
        if rec.get("genotype") != arch["genotype_dict"]:
            raise UserError(f"{marker}: trained another architecture than "
                            f"{genotype_path(plan, arch['name'])}; delete {d} to redo it")
        return rec
    resumed = restart_unfinished(run, "last.pt", "ranking")
    if resumed:
        argv.append("--resume")
    result = run_stage(procs, argv, d / "train.log",
                       f"{arch['name']}: train{' (resumed)' if resumed else ''}", "ranking")
    counter.ran += 1
    if not (run / "best.pt").is_file():
        raise StageFailed(f"{arch['name']}: training ended without {run / 'best.pt'}", 1)
    rec = stage_record(argv, result, resumed) | {"genotype": arch["genotype_dict"]}
    write_json(marker, rec)
    return rec


def test_stage(plan: Plan, arch: dict[str, Any], procs: Processes,
               counter: Counter) -> dict[str, Any]:
    d = plan.out / arch["name"]
    marker, run = d / "test.json", d / "test"
    argv = autopose_argv("test", "--checkpoint", str(d / "train" / "best.pt"),
                         "--config", str(plan.train_config), "--out", str(run),
                         f"seed={plan.seed}", *plan.train_overrides)
    rec = done_before(marker, argv, counter, CommandForm(plan.out))
    if rec is not None:
        return rec
    restart_unfinished(run, None, "ranking")  # a test is run again whole
    result = run_stage(procs, argv, d / "test.log", f"{arch['name']}: test", "ranking")
    counter.ran += 1
    metrics = read_json(run / "metrics.json", "test metrics")
    rec = stage_record(argv, result, False) | {"AP": float(metrics["AP"]),
                                                 "AP50": float(metrics["AP .5"])}
    write_json(marker, rec)
    return rec


def arch_processes(plan: Plan, arch: dict[str, Any], procs: Processes) -> dict[str, Any]:
    """Train and test one architecture (a worker thread; its own counter)."""
    counter = Counter()
    train = train_stage(plan, arch, procs, counter)
    test = test_stage(plan, arch, procs, counter)
    return {"train": train, "test": test, "counter": counter}


def arch_result(plan: Plan, arch: dict[str, Any], stages: dict[str, Any],
                counter: Counter) -> dict[str, Any]:
    """AP and cost of the trained network (``result.json``, kept while no stage was redone)."""
    marker = plan.out / arch["name"] / "result.json"
    if marker.exists() and stages["counter"].ran == 0:
        counter.skipped += 1
        return read_json(marker, "ranking record")
    cost = checkpoint_cost(plan.out / arch["name"] / "train" / "best.pt")
    train, test = stages["train"], stages["test"]
    rec = {"AP": test["AP"], "AP50": test["AP50"], **cost,
           "train_cpu_s": train["cpu_s"], "train_wall_s": train["wall_s"],
           "train_resumed": train["resumed"], "test_cpu_s": test["cpu_s"],
           "test_wall_s": test["wall_s"]}
    write_json(marker, rec)
    counter.ran += 1
    return rec


def run_archs(plan: Plan, archs: list[dict[str, Any]], counter: Counter) -> list[dict[str, Any]]:
    """Every architecture's stages, ``--jobs`` at a time (the study's scheduler): a failure
    or an interrupt kills the other running stages (they resume on the next run)."""
    procs = Processes(plan.env)
    stages: list[dict[str, Any] | None] = [None] * len(archs)

    def task(i: int, arch: dict[str, Any]) -> Task:
        def work() -> None:
            stages[i] = arch_processes(plan, arch, procs)
        return Task(arch["name"], work)

    run_tasks([task(i, a) for i, a in enumerate(archs)], plan.jobs, procs.stop)
    out = []
    for a, s in zip(archs, stages):
        assert s is not None
        counter.ran += s["counter"].ran
        counter.skipped += s["counter"].skipped
        out.append(s | {"result": arch_result(plan, a, s, counter)})
    return out


# ---------------------------------------------------------------------------- statistics


def _finite(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def kendall(x: Any, y: Any) -> tuple[float | None, float | None]:
    """Kendall tau-b and its two-sided p-value; None when undefined (a constant variable)."""
    import numpy as np
    from scipy.stats import kendalltau

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None, None
    r = kendalltau(x, y)
    return _finite(r.statistic), _finite(r.pvalue)


def spearman(x: Any, y: Any) -> tuple[float | None, float | None]:
    import numpy as np
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None, None
    r = spearmanr(x, y)
    return _finite(r.statistic), _finite(r.pvalue)


def bootstrap_kendall(x: Any, y: Any, resamples: Any) -> Any:
    """Kendall tau-b of ``x`` against ``y`` on each row of ``resamples`` (indices, shape
    ``(R, n)``); NaN where undefined. Tau-b is sum(sx * sy) / sqrt(sum(sx^2) * sum(sy^2))
    over the pairs, with sx, sy the signs of the pair's differences: what
    ``scipy.stats.kendalltau`` computes, for every resample at once."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    out = np.empty(len(resamples))
    for start in range(0, len(resamples), 256):  # bounded memory for larger n
        rows = resamples[start:start + 256]
        xs, ys = x[rows], y[rows]
        sx = np.sign(xs[:, :, None] - xs[:, None, :])
        sy = np.sign(ys[:, :, None] - ys[:, None, :])
        den = np.sqrt((sx * sx).sum((1, 2)) * (sy * sy).sum((1, 2)))
        num = (sx * sy).sum((1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + len(rows)] = np.where(den > 0, num / den, np.nan)
    return out


def _interval(values: list[float]) -> list[float] | None:
    import numpy as np

    if not values:
        return None
    lo, hi = np.percentile(np.asarray(values), [2.5, 97.5])
    return [float(lo), float(hi)]


def rank_statistics(rankers: dict[str, list[float]], ap: list[float], resamples: int,
                    seed: int) -> dict[str, Any]:
    """Per ranker: Kendall tau-b against ``ap`` with its 95 % percentile-bootstrap interval
    (the architectures resampled with replacement, the same resamples for every ranker;
    resamples where a tau is undefined skipped), Spearman rho; and the paired intervals of
    tau(first ranker) minus each other's."""
    import numpy as np

    n = len(ap)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    y = np.asarray(ap, float)
    boot: dict[str, np.ndarray] = {}
    out: dict[str, Any] = {"resamples": resamples, "seed": seed, "n": n, "rankers": {}}
    for name, values in rankers.items():
        x = np.asarray(values, float)
        tau, p = kendall(x, y)
        rho, rho_p = spearman(x, y)
        taus = bootstrap_kendall(x, y, idx)
        boot[name] = taus
        valid = taus[np.isfinite(taus)]
        out["rankers"][name] = {"tau": tau, "p": p, "ci95": _interval(valid.tolist()),
                                "bootstrap_valid": int(valid.size),
                                "spearman_rho": rho, "spearman_p": rho_p}
    names = list(rankers)
    out["differences"] = {}
    for other in names[1:]:
        diff = boot[names[0]] - boot[other]
        valid = diff[np.isfinite(diff)]
        a, b = out["rankers"][names[0]]["tau"], out["rankers"][other]["tau"]
        out["differences"][f"{names[0]}-{other}"] = {
            "delta_tau": None if a is None or b is None else a - b,
            "ci95": _interval(valid.tolist()), "bootstrap_valid": int(valid.size),
            "share_above_0": float((valid > 0).mean()) if valid.size else None}
    return out


# ---------------------------------------------------------------------------- outputs


def _num(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def format_stats(stats: dict[str, Any]) -> str:
    lines = ["| ranker | Kendall tau (vs AP) | 95 % CI | p | Spearman rho |",
             "|---|---|---|---|---|"]
    for key, label in RANKERS:
        r = stats["rankers"][key]
        tau = "undefined" if r["tau"] is None else f"{r['tau']:+.3f}"
        rho = "-" if r["spearman_rho"] is None else f"{r['spearman_rho']:+.3f}"
        lines.append(f"| {label} | {tau} | {_ci(r['ci95'])} | {_num(r['p'], 3)} | {rho} |")
    lines.append("")
    for key, d in stats["differences"].items():
        a, b = key.split("-")
        delta = "undefined" if d["delta_tau"] is None else f"{d['delta_tau']:+.3f}"
        share = "-" if d["share_above_0"] is None else f"{d['share_above_0']:.2f}"
        lines.append(f"- tau({a}) - tau({b}): {delta}, 95 % CI {_ci(d['ci95'])}, "
                     f"share of resamples above 0: {share}")
    lines.append(f"\n{stats['n']} architectures; bootstrap: {stats['resamples']} resamples "
                 f"(seed {stats['seed']}), percentile interval.")
    return "\n".join(lines) + "\n"


def format_table(rows: list[dict[str, Any]], reward_kind: str) -> str:
    lines = [f"| # | scale vectors | reward ({reward_kind}) | AP | params (M) | GFLOPs | "
             "train CPU-s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        tag = f"{r['index']} (derived)" if r["derived"] else str(r["index"])
        lines.append(f"| {tag} | {_sv(r['scale_vectors'])} | {r['reward']:.4f} | "
                     f"{r['AP']:.4f} | {r['params'] / 1e6:.3f} | {r['gflops']:.4f} | "
                     f"{r['cpu_s']['train']:.0f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], stats: dict[str, Any], reward_kind: str,
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autopose.io import atomic_write

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ap = [r["AP"] for r in rows]
    for ax, (key, label) in zip(axes, RANKERS):
        xs = [r[key] / 1e6 if key == "params" else r[key] for r in rows]
        ax.scatter(xs[1:], ap[1:], color="tab:blue", s=25, label="uniform samples")
        ax.scatter(xs[:1], ap[:1], color="tab:red", marker="*", s=180, label="derived")
        for r, x, y in zip(rows, xs, ap):
            ax.annotate(str(r["index"]), (x, y), textcoords="offset points", xytext=(4, 3),
                        fontsize=7)
        s = stats["rankers"][key]
        tau = "undefined" if s["tau"] is None else f"{s['tau']:+.2f} {_ci(s['ci95'])}"
        ax.set_title(f"Kendall tau {tau}", fontsize=10)
        ax.set_xlabel({"reward": f"shared-weight reward ({reward_kind})",
                       "params": "parameters (M)", "gflops": "GFLOPs (training input)"}[key])
        ax.set_ylabel("test AP (trained from scratch)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def collect_commands(plan: Plan, archs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    commands = []
    for a in archs:
        for stage in ("train", "test"):
            marker = plan.out / a["name"] / f"{stage}.json"
            if marker.exists():
                commands.append({"arch": a["name"], "stage": stage,
                                 "command": read_json(marker, "ranking record")["command"]})
    return commands


def write_outputs(plan: Plan, rewards: dict[str, Any], done: list[dict[str, Any]],
                  argv: list[str]) -> str:
    rows = []
    for a, s in zip(rewards["archs"], done):
        res = s["result"]
        rows.append({"index": a["index"], "name": a["name"], "derived": a["derived"],
                     "scale_vectors": a["scale_vectors"], "reward": a["reward"],
                     "AP": res["AP"], "AP50": res["AP50"], "params": res["params"],
                     "params_m": res["params_m"], "gflops": res["gflops"],
                     "input_size": res["input_size"], "width_mult": res["width_mult"],
                     "network": res["network"],
                     "genotype": str(genotype_path(plan, a["name"])),
                     "train_resumed": res["train_resumed"],
                     "cpu_s": {"reward": a["reward_cpu_s"], "train": res["train_cpu_s"],
                               "test": res["test_cpu_s"]},
                     "wall_s": {"train": res["train_wall_s"], "test": res["test_wall_s"]}})
    ap = [r["AP"] for r in rows]
    stats = rank_statistics({k: [float(r[k]) for r in rows] for k, _ in RANKERS}, ap,
                            plan.bootstrap, plan.seed)
    kind = rewards["reward_kind"]
    head = (f"# Reward ranking of {plan.search}\n\n"
            f"Strategy {rewards['strategy']}, reward {kind}, search seed "
            f"{rewards['search_seed']}; {len(rows)} architectures (0: the derived one, then "
            f"uniform scale vectors, seed {plan.seed}), cells {rewards['cells']}; trained "
            f"with {plan.train_config.name}"
            f"{' ' + shlex.join(plan.train_overrides) if plan.train_overrides else ''}, "
            f"seed {plan.seed}.\n\n")
    table, stat_text = format_table(rows, kind), format_stats(stats)
    write_text(plan.out / "ranking.md", head + table + "\n" + stat_text)
    record = run_record(plan.seed, argv)
    write_json(plan.out / "ranking.json", {
        "search": str(plan.search), "search_seed": rewards["search_seed"],
        "search_strategy": rewards["strategy"], "reward_kind": kind,
        "search_world_size": rewards["search_world_size"], "cells": rewards["cells"],
        "search_config_changes": rewards["config_changes"],
        "derived_genotype_reproduced": rewards["derived_genotype_reproduced"],
        "checkpoint_sha256": rewards["made_from"]["checkpoint_sha256"],
        "archs": rows, "statistics": stats,
        "options": {"archs": plan.archs, "jobs": plan.jobs, "seed": plan.seed,
                    "bootstrap": plan.bootstrap, "train_config": str(plan.train_config),
                    "set": plan.sets, "quick": plan.quick,
                    "train_overrides": plan.train_overrides},
        "rewards_cpu_s": rewards["cpu_s"], "rewards_wall_s": rewards["wall_s"],
        "ranking_command": shlex.join([sys.executable, *argv]),
        "commands": collect_commands(plan, rewards["archs"]),
        "git_commit": record["git_commit"], "versions": record["versions"],
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "OMP_NUM_THREADS": plan.env.get("OMP_NUM_THREADS")},
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "conventions": "Kendall tau-b (scipy.stats.kendalltau) against test AP; 95 % "
                       "percentile bootstrap over architectures; GFLOPs: multiply-"
                       "accumulates / 1e9 at the training input size; CPU time: user + "
                       "system of the stage's process and its children"})
    plot(rows, stats, kind, plan.out / "ranking.png")
    return table + "\n" + stat_text


# ---------------------------------------------------------------------------- main


def run_ranking(plan: Plan, argv: list[str]) -> str:
    counter = Counter()
    start = time.monotonic()
    rewards = rewards_stage(plan, counter)
    done = run_archs(plan, rewards["archs"], counter)
    summary = write_outputs(plan, rewards, done, argv)
    print(f"ranking: {counter.ran} stages run, {counter.skipped} skipped (done before), "
          f"{time.monotonic() - start:.0f} s; outputs in {plan.out}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    parser = build_parser()
    plan = make_plan(parser.parse_args(argv[1:]), parser)

    def work() -> str:
        check_inputs(plan)
        return run_ranking(plan, argv)

    return run_driver("ranking", work)


if __name__ == "__main__":
    raise SystemExit(main())
