"""``autopose study``: resolve the options, decide what is left to run, run it ``--jobs`` at
a time, and write the outputs.

Every stage is a fresh ``python -m autopose`` process, as a user would run it; the study
itself only schedules them, measures the trained networks and aggregates. Rerunning a
finished study runs nothing and only writes the outputs again.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from typing import Any

from autopose.errors import UserError
from autopose.study.commands import CommandForm
from autopose.study.options import Plan, check_overrides, make_plan
from autopose.study.processes import Processes, run_driver
from autopose.study.records import Markers, marker_name
from autopose.study.report import write_outputs
from autopose.study.resume import (SKIP, Resumption, apply_resumption, plan_resumption,
                                   table_cells)
from autopose.study.rows import BASELINE_ROW, REFERENCE_ROW, ROWS
from autopose.study.schedule import Task, run_tasks
from autopose.study.stages import WHO, Study
from autopose.study.stats import read_ranking

# What each kind of stage runs (a cell's result is short in-process work).
WORK: dict[str, Callable[[Study, str, int], None]] = {
    "search": Study.search, "train": Study.train, "test": Study.test, "result": Study.result}
INLINE = frozenset({"result"})
WIDTH_TASK = f"{BASELINE_ROW}/width"
WHO_LONG = "autopose study"  # the prefix of its error lines


def build_tasks(study: Study, res: Resumption) -> list[Task]:
    """The stages that run, seed by seed then in table order, each after the stage before
    it in its cell; the width after every reference search that runs, the HRNet cells after
    the width."""
    tasks: list[Task] = []
    searches = []
    for row, seed in sorted(res.cells, key=lambda c: (c[1], ROWS.index(c[0]))):
        prev = WIDTH_TASK if row == BASELINE_ROW and res.width != SKIP else None
        for kind, status in res.cells[(row, seed)].items():
            if status == SKIP:
                continue
            name = f"{row}/seed{seed}/{kind}"
            tasks.append(Task(name, functools.partial(WORK[kind], study, row, seed),
                              deps=() if prev is None else (prev,), inline=kind in INLINE))
            if row == REFERENCE_ROW and kind == "search":
                searches.append(name)
            prev = name
    if res.width is not None and res.width != SKIP:
        # First in the list: in-process and quick, it runs as soon as it can.
        tasks.insert(0, Task(WIDTH_TASK, study.match_width, deps=tuple(searches), inline=True))
    return tasks


def recorded_results(study: Study, cells: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """The result records of the ``cells`` that have one, in the order of ``cells``."""
    return [rec for row, seed in cells
            if (rec := study.markers.read(marker_name(row, seed, "result"))) is not None]


def run_study(plan: Plan, ranking: dict[str, Any] | None, argv: list[str]) -> str:
    """Run (or resume) every stage, then write the outputs; returns the table."""
    start = time.monotonic()
    procs = Processes(plan.env)
    study = Study(plan, CommandForm(plan.out), Markers(plan.out, plan.records), procs)
    res = plan_resumption(study)
    apply_resumption(study, res)
    ran = run_tasks(build_tasks(study, res), plan.jobs, procs.stop)
    cells = table_cells(study)
    results = recorded_results(study, cells)
    assert len(results) == len(cells), "a cell finished without its result"
    table = write_outputs(study, results, list(res.cells), ranking, argv)
    print(f"{WHO}: {ran} stages run, {res.count(SKIP)} skipped (done before), "
          f"{time.monotonic() - start:.0f} s; outputs in {plan.out}", flush=True)
    return table


def report_study(plan: Plan, ranking: dict[str, Any] | None, argv: list[str]) -> str:
    """``--report``: the outputs of the cells whose result is recorded (in ``--out`` or
    ``--records``), the seeds each row has so far; no stage runs and no record changes."""
    study = Study(plan, CommandForm(plan.out), Markers(plan.out, plan.records),
                  Processes(plan.env))
    cells = table_cells(study)
    results = recorded_results(study, cells)
    table = write_outputs(study, results, cells, ranking, argv)
    print(f"{WHO}: report of {len(results)} of {len(cells)} cells (nothing run); outputs in "
          f"{plan.out}", flush=True)
    return table


def run_study_command(args: argparse.Namespace, argv: list[str]) -> int:
    """``autopose study``: exit code 0, 2 for bad input (one line, nothing run), a failed
    stage's (2 when the stage reported bad input, else 1), 130 when interrupted."""
    try:
        plan = make_plan(args)
        check_overrides(plan)
        # Read by the path the user gave, which is the one study.json records (it is
        # committed: a machine's absolute path is not worth recording there).
        ranking = None if args.ranking is None else read_ranking(args.ranking)
    except UserError as e:
        print(f"{WHO_LONG}: error: {e}", file=sys.stderr)
        return 2
    work = report_study if plan.report else run_study
    return run_driver(WHO_LONG, lambda: work(plan, ranking, argv))
