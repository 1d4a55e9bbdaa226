"""The stages of one cell (row, seed) and the HRNet width, each ending with its marker.

Per (row, seed), with ``S`` the seed and ``SETS`` the overrides (``commands.py`` builds
them)::

    python -m autopose search --config SEARCH_CFG --out OUT/ROW/seedS/search --seed S
        --strategy STRATEGY SETS [the row's]                          (searched rows only)
    python -m autopose train --config TRAIN_CFG (--genotype GENOTYPE | --model hrnet_w32)
        --out OUT/ROW/seedS/train seed=S SETS [train.width_mult=W for HRNet]
    python -m autopose test --checkpoint OUT/ROW/seedS/train/best.pt --config TRAIN_CFG
        --out OUT/ROW/seedS/test seed=S SETS [the same]

then the cell's result (``result.json``: AP, and GFLOPs and parameters of ``best.pt``'s own
architecture at the training input size). A stage's cost is the user + system CPU time of
its process (``os.wait4``: data-loader workers included). A stage killed half-way is run
again, with ``--resume`` when its run folder holds a checkpoint (a search's
``checkpoint.pt``, a training's ``last.pt``); its recorded time is then that of its last,
resumed attempt only (``resumed: true``): the killed attempt's CPU time died with it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shlex
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autopose.errors import UserError
from autopose.io import git_commit, read_json, restart_unfinished, say
from autopose.study.commands import (CommandForm, search_argv, seed_dir, test_argv,
                                     train_argv)
from autopose.study.cost import WIDTH_GRID, checkpoint_cost, derived_macs, match_width
from autopose.study.options import Plan
from autopose.study.processes import Processes, StageFailed, run_stage
from autopose.study.records import Markers, marker_name
from autopose.study.rows import BASELINE_ROW, REFERENCE_ROW, ROW_SPECS

WIDTH = f"{BASELINE_ROW}/width.json"
WHO = "study"


@dataclass
class Counter:
    """Stages run and skipped (printed at the end; a resumed finished study runs none)."""

    ran: int = 0
    skipped: int = 0


def stage_record(argv: list[str], result: dict[str, Any], resumed: bool) -> dict[str, Any]:
    """The marker of a finished process stage: its command, its cost, when it finished and
    the commit it started at (``result["commit"]``; else the commit now)."""
    return {"argv": argv, "command": shlex.join(argv), "resumed": resumed,
            "wall_s": result["wall_s"], "cpu_s": result["cpu_s"],
            "finished_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "commit": result["commit"] if "commit" in result else git_commit()}


def conflict(marker: Path | None, diff: str) -> UserError:
    """The error of a marker made by another command: reusing it would mix two settings in
    one table."""
    return UserError(f"{marker}: made by another command ({diff}); give another --out (and "
                     f"--records), or delete {marker.parent if marker else 'it'} to redo it")


def done_before(marker: Path, argv: list[str], counter: Counter,
                form: CommandForm) -> dict[str, Any] | None:
    """The marker of a stage finished by an earlier run of the same command, else None; a
    marker made by another command is a UserError (``bench/ranking.py``'s check)."""
    if not marker.exists():
        return None
    rec = read_json(marker, "study record")
    diff = form.difference(rec["argv"], argv)
    if diff is not None:
        raise conflict(marker, diff)
    counter.skipped += 1
    return rec


def digest(obj: Any) -> str:
    """sha256 of a JSON value's canonical text (the identity of a genotype)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@dataclass
class Study:
    """What the stages of one study share."""

    plan: Plan
    form: CommandForm
    markers: Markers
    procs: Processes
    # HRNet's matched width multiplier, once known (recorded, or made by width()).
    width: float | None = None

    def _run(self, argv: list[str], row: str, seed: int, kind: str,
             resumed: bool) -> dict[str, Any]:
        what = f"{row} seed {seed}: {kind}{' (resumed)' if resumed else ''}"
        # The commit the stage's process imports its code from: taken as it starts, since a
        # study runs for hours and the checkout may move on meanwhile.
        commit = git_commit()
        result = run_stage(self.procs, argv, seed_dir(self.plan, row, seed) / f"{kind}.log",
                           what, WHO)
        return result | {"commit": commit}

    # ------------------------------------------------------------------------ processes

    def search(self, row: str, seed: int) -> None:
        """``autopose search`` -> ``search.json`` (the genotype, its digest, CPU-minutes)."""
        run = seed_dir(self.plan, row, seed) / "search"
        argv = search_argv(self.plan, row, seed)
        # A killed search left its checkpoint: continue it (the same command plus --resume);
        # one killed before its first checkpoint starts again.
        resumed = restart_unfinished(run, "checkpoint.pt", WHO)
        if resumed:
            argv.append("--resume")
        result = self._run(argv, row, seed, "search", resumed)
        genotype = run / "genotype.json"
        if not genotype.is_file():
            raise StageFailed(f"{row} seed {seed}: search ended without {genotype}", 1)
        geno = read_json(genotype, "genotype")
        rec = stage_record(self.form.portable(argv), result, resumed) | {
            "genotype": self.form.portable_text(str(genotype)), "genotype_sha256": digest(geno),
            "cpu_min": result["cpu_s"] / 60.0, "scale_vectors": geno.get("scale_vectors")}
        # The genotype first: a search marker in the records always has its genotype there.
        self.markers.restore_genotype(row, seed)
        self.markers.write(marker_name(row, seed, "search"), rec)
        self.drop_checkpoint(row, seed)

    def drop_checkpoint(self, row: str, seed: int) -> None:
        """Delete a finished search's checkpoint.pt (the supernet and both Adam states:
        380 MB in the default setting): only resuming needs it."""
        ckpt = seed_dir(self.plan, row, seed) / "search" / "checkpoint.pt"
        if ckpt.exists() and not self.plan.keep_search_checkpoints:
            ckpt.unlink()

    def train(self, row: str, seed: int) -> None:
        """``autopose train`` of the row's network -> ``train.json``."""
        run = seed_dir(self.plan, row, seed) / "train"
        argv = train_argv(self.plan, row, seed, self.width)
        resumed = restart_unfinished(run, "last.pt", WHO)
        if resumed:
            argv.append("--resume")
        result = self._run(argv, row, seed, "train", resumed)
        if not (run / "best.pt").is_file():
            raise StageFailed(f"{row} seed {seed}: training ended without {run / 'best.pt'}",
                              1)
        self.markers.write(marker_name(row, seed, "train"),
                           stage_record(self.form.portable(argv), result, resumed))

    def test(self, row: str, seed: int) -> None:
        """``autopose test`` of the trained ``best.pt`` -> ``test.json`` (AP, AP .5)."""
        run = seed_dir(self.plan, row, seed) / "test"
        argv = test_argv(self.plan, row, seed, self.width)
        restart_unfinished(run, None, WHO)  # a test is run again whole
        result = self._run(argv, row, seed, "test", False)
        metrics = read_json(run / "metrics.json", "test metrics")
        rec = stage_record(self.form.portable(argv), result, False) | {
            "AP": float(metrics["AP"]), "AP50": float(metrics["AP .5"])}
        self.markers.write(marker_name(row, seed, "test"), rec)

    # ------------------------------------------------------------------------ in-process

    def result(self, row: str, seed: int) -> None:
        """The cell's record (``result.json``): AP, cost of the trained network, times."""
        d = seed_dir(self.plan, row, seed)
        search = (self.markers.read(marker_name(row, seed, "search"))
                  if ROW_SPECS[row].searched else None)
        train = self.markers.read(marker_name(row, seed, "train"))
        test = self.markers.read(marker_name(row, seed, "test"))
        assert train is not None and test is not None, (row, seed)
        genotype = ROW_SPECS[row].genotype
        scale_vectors = (search["scale_vectors"] if search is not None else
                         read_json(genotype, "genotype").get("scale_vectors")
                         if genotype is not None else None)
        rec = {"row": row, "seed": seed, "AP": test["AP"], "AP50": test["AP50"],
               **checkpoint_cost(d / "train" / "best.pt"),
               "search_cpu_min": None if search is None else search["cpu_min"],
               "search_wall_s": None if search is None else search["wall_s"],
               "search_resumed": None if search is None else search["resumed"],
               "scale_vectors": scale_vectors,
               "train_cpu_min": train["cpu_s"] / 60.0, "train_wall_s": train["wall_s"],
               "train_resumed": train["resumed"], "test_wall_s": test["wall_s"]}
        self.markers.write(marker_name(row, seed, "result"), rec)

    def width_made_from(self) -> dict[str, Any]:
        """What the matched width depends on: the reference row's genotypes (by digest,
        from their search markers) and the training setting."""
        seeds = self.plan.seeds[REFERENCE_ROW]
        digests = []
        for seed in seeds:
            rec = self.markers.read(marker_name(REFERENCE_ROW, seed, "search"))
            digests.append(None if rec is None else rec.get("genotype_sha256"))
        return {"reference_row": REFERENCE_ROW, "reference_seeds": seeds,
                "genotype_sha256": digests,
                "train_config": self.form.portable_text(str(self.plan.train_config)),
                "train_overrides": [self.form.portable_text(o)
                                    for o in self.plan.train_overrides]}

    def match_width(self) -> None:
        """The HRNet width matched to the mean FLOPs of the reference row's derived networks
        over its seeds (``width.json``)."""
        per_seed, hw = [], (0, 0)
        for seed in self.plan.seeds[REFERENCE_ROW]:
            genotype = seed_dir(self.plan, REFERENCE_ROW, seed) / "search" / "genotype.json"
            macs, hw = derived_macs(self.plan.train_config, self.plan.train_overrides,
                                    genotype)
            per_seed.append(macs)
        target = statistics.fmean(per_seed)
        say(f"{WHO}: {BASELINE_ROW}: matching {target / 1e9:.4f} GFLOPs at {hw[0]}x{hw[1]} ...")
        baseline = ROW_SPECS[BASELINE_ROW].baseline
        assert baseline is not None
        width, macs = match_width(baseline, target, hw)
        rec = {"made_from": self.width_made_from(),
               "reference_gflops": [m / 1e9 for m in per_seed], "target_gflops": target / 1e9,
               "input_size": list(hw), "width_mult": width, "gflops": macs / 1e9,
               "grid": [WIDTH_GRID[0], WIDTH_GRID[-1], 0.005]}
        self.markers.write(WIDTH, rec)
        self.width = width
        say(f"{WHO}: {BASELINE_ROW}: width_mult {width:g} ({macs / 1e9:.4f} GFLOPs)")
