"""What a (re)started study still has to run: every stage is skipped, run, or redone.

Decided once, before any stage starts, from the markers (``--out``'s, else ``--records``'):

- **skip**: its marker was made by the same command (``CommandForm.what``) and every stage
  before it in its cell was skipped. A marker made by another command is an error instead.
- **run**: no marker, every stage before it skipped: a stage killed half-way is continued
  (``--resume``) or started again.
- **redo**: a stage before it runs in this invocation, so whatever it left is stale: its
  marker and run folder are removed and it runs from scratch.

A skipped training whose ``best.pt`` a later stage still needs (its test or result not
recorded, and the checkpoint gone, as in a fresh clone) is redone with what follows it; a
search without its genotype likewise. The HRNet width is skipped when its record was made
from the same reference genotypes and training setting (another one is an error), redone
when a reference search runs; the HRNet cells follow it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from autopose.errors import UserError
from autopose.study.commands import search_argv, seed_dir, test_argv, train_argv
from autopose.study.records import marker_name
from autopose.study.rows import BASELINE_ROW, REFERENCE_ROW, ROW_SPECS
from autopose.study.stages import WIDTH, Study, conflict

SKIP, RUN, REDO = "skip", "run", "redo"
# The process stages, in the order they run in a cell, then the cell's result.
KINDS = ("search", "train", "test", "result")
ARGV = {"search": lambda plan, row, seed, width: search_argv(plan, row, seed),
        "train": train_argv, "test": test_argv}


def cell_kinds(row: str) -> tuple[str, ...]:
    """The stages of a cell of ``row``: a row that is not searched starts with training."""
    return KINDS if ROW_SPECS[row].searched else KINDS[1:]


@dataclass
class Resumption:
    """Every stage of the study with what this invocation does with it."""

    # (row, seed) -> kind -> SKIP | RUN | REDO, cells in table order.
    cells: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)
    width: str | None = None  # the HRNet width's, when the baseline row is in the study
    recorded_width: float | None = None  # its value when skipped

    def count(self, status: str) -> int:
        kinds = [s for stages in self.cells.values() for s in stages.values()]
        return kinds.count(status) + (self.width == status)


def table_cells(study: Study) -> list[tuple[str, int]]:
    """The (row, seed) cells of the table, in table order."""
    plan = study.plan
    return [(row, seed) for row in plan.rows for seed in plan.seeds[row]]


def _cell(study: Study, row: str, seed: int, kinds: tuple[str, ...], upstream: bool,
          width: float | None) -> dict[str, str]:
    """The statuses of a cell's stages (``upstream``: a stage it depends on runs)."""
    plan, markers = study.plan, study.markers
    out: dict[str, str] = {}
    ran = upstream
    for kind in kinds:
        name = marker_name(row, seed, kind)
        rec = markers.read(name)
        if ran:
            status = REDO
        elif rec is None:
            status = RUN
        else:
            if kind in ARGV:
                diff = study.form.difference(rec["argv"], ARGV[kind](plan, row, seed, width))
                if diff is not None:
                    raise conflict(markers.where(name), diff)
            status = SKIP
            if kind == "search" and not markers.has_genotype(row, seed):
                status = REDO
        out[kind] = status
        ran = ran or status != SKIP
    # A skipped training whose checkpoint is gone while its test or result still has to be
    # made: train again, and everything after it.
    best = seed_dir(plan, row, seed) / "train" / "best.pt"
    if (out.get("train") == SKIP and any(out[k] != SKIP for k in ("test", "result"))
            and not best.is_file()):
        start = kinds.index("train")
        out |= {k: REDO for k in kinds[start:]}
    return out


def plan_resumption(study: Study) -> Resumption:
    """Decide every stage's status; raises UserError on a marker made by another command
    (nothing is changed on disk)."""
    plan = study.plan
    res = Resumption()
    cells = table_cells(study)
    for row, seed in cells:
        if row != BASELINE_ROW:
            res.cells[(row, seed)] = _cell(study, row, seed, cell_kinds(row), False, None)
    if BASELINE_ROW not in plan.rows:
        return res
    # The width needs the reference row's searches: run here when that row is not studied.
    refs = [(REFERENCE_ROW, seed) for seed in plan.seeds[REFERENCE_ROW]]
    for cell in refs:
        if cell not in res.cells:
            res.cells[cell] = _cell(study, *cell, ("search",), False, None)
    rec = study.markers.read(WIDTH)
    if rec is None:
        res.width = RUN
    elif any(res.cells[c]["search"] != SKIP for c in refs):
        res.width = REDO
    else:
        made_from = study.width_made_from()
        if rec["made_from"] != made_from:
            raise UserError(f"{study.markers.where(WIDTH)}: matched to other {REFERENCE_ROW} "
                            f"networks (seeds {rec['made_from']['reference_seeds']} now "
                            f"{made_from['reference_seeds']}, or another training setting); "
                            f"delete it (and {BASELINE_ROW}/) to redo the {BASELINE_ROW} row")
        res.width, res.recorded_width = SKIP, float(rec["width_mult"])
    for row, seed in cells:
        if row == BASELINE_ROW:
            res.cells[(row, seed)] = _cell(study, row, seed, cell_kinds(row),
                                           res.width != SKIP, res.recorded_width)
    return res


def apply_resumption(study: Study, res: Resumption) -> None:
    """Make the study folder match the decision: restore every skipped stage's record from
    the records (and copy out's to them), remove every redone stage's record and run
    folder, and delete finished searches' checkpoints."""
    markers = study.markers
    for (row, seed), stages in res.cells.items():
        for kind, status in stages.items():
            name = marker_name(row, seed, kind)
            if status == SKIP:
                markers.restore(name)
                if kind == "search":
                    markers.restore_genotype(row, seed)
                    study.drop_checkpoint(row, seed)
            elif status == REDO:
                markers.forget(name)
                folder = seed_dir(study.plan, row, seed) / kind
                if kind != "result" and folder.exists():
                    shutil.rmtree(folder)
    if res.width == SKIP:
        markers.restore(WIDTH)
        study.width = res.recorded_width
    elif res.width == REDO:
        markers.forget(WIDTH)
