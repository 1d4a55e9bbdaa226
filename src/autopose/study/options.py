"""``autopose study``'s options: the command line, and the :class:`Plan` they resolve to.

Every check that can fail on the user's input runs here, before any stage: the configs
with every row's overrides are loaded (an unknown key or a bad value is one line, exit
code 2), and ``--out`` and ``--records`` must be writable (the ranking file is read by
``run.run_study_command``, by the path given).
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from autopose.config import load_config
from autopose.errors import UserError
from autopose.study.rows import (BASELINE_ROW, DEFAULT_SEARCH_CONFIG, DEFAULT_SMALL_INPUT,
                                 DEFAULT_TRAIN_CONFIG, QUICK_DATA, QUICK_SEARCH,
                                 QUICK_SMALL_INPUT, QUICK_TRAIN, REFERENCE_ROW, ROW_SPECS,
                                 ROWS, row_search_overrides, seed_count)

USAGE = ("autopose study --out DIR [--rows ROW ...] [--seeds N] [--jobs K] [--quick]\n"
         "                      [--records DIR] [--ranking FILE] [--search-config F]\n"
         "                      [--train-config F] [--small-input HxW]\n"
         "                      [--keep-search-checkpoints] [--report] [key=value ...]")


@dataclass
class Plan:
    """What the study runs: the options resolved, and the overrides of each kind of stage."""

    out: Path
    rows: list[str]
    # Seeds of every row of ROWS (the reference row's too, which the HRNet width needs
    # even when that row is not among --rows).
    seeds: dict[str, list[int]]
    jobs: int
    quick: bool
    search_config: Path
    train_config: Path
    overrides: list[str]
    small_input: tuple[int, int]
    keep_search_checkpoints: bool
    records: Path | None = None
    report: bool = False  # write the outputs of the cells finished so far, run nothing
    search_overrides: list[str] = field(default_factory=list)
    train_overrides: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def one_thread(self) -> bool:
        """Each stage on one thread: K stages at once on K cores must not oversubscribe."""
        return self.jobs > 1


def _input_size(text: str) -> tuple[int, int]:
    """argparse type of ``--small-input``: ``"96x72"`` -> ``(96, 72)`` (height, width)."""
    m = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 96x72, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def override(text: str) -> str:
    """argparse type of a ``key=value`` config override."""
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return text


def _positive(text: str) -> int:
    """argparse type of ``--seeds`` and ``--jobs``: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def add_study_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``autopose study`` on its subcommand parser."""
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="study folder (resumable: run the same command again)")
    # Row names are checked in make_plan: nargs="+" also swallows key=value arguments
    # written after it, which are moved back to the overrides there.
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                   help=f"a subset of the rows (default all): {' '.join(ROWS)}")
    p.add_argument("--seeds", type=_positive, default=None, metavar="N",
                   help="seeds 0..N-1 for every row (default: 8 for autopose and random, "
                        "5 for the others; 1 with --quick)")
    p.add_argument("--jobs", type=_positive, default=1, metavar="K",
                   help="stages run at once, each on one thread (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="tiny settings on the same code path, one seed per row (about 90 s on one "
                        "core)")
    p.add_argument("--records", type=Path, default=None, metavar="DIR",
                   help="also keep every finished stage's small record here (JSON, e.g. "
                        "docs/study-records, to commit), and resume from them")
    p.add_argument("--ranking", type=Path, default=None, metavar="FILE",
                   help="ranking.json of bench/ranking.py: its Kendall tau of the search's "
                        "rewards goes into the outputs")
    p.add_argument("--search-config", type=Path, default=DEFAULT_SEARCH_CONFIG, metavar="F",
                   help="config of every search (default configs/synthetic/default.yaml)")
    p.add_argument("--train-config", type=Path, default=DEFAULT_TRAIN_CONFIG, metavar="F",
                   help="config of every training and test "
                        "(default configs/synthetic/train_short.yaml)")
    p.add_argument("--small-input", type=_input_size, default=None, metavar="HxW",
                   help="search input of the small_input row (default 96x72; 48x36 with "
                        "--quick)")
    p.add_argument("--keep-search-checkpoints", action="store_true",
                   help="keep each finished search's checkpoint.pt (deleted by default)")
    p.add_argument("--report", action="store_true",
                   help="run nothing: write the outputs from the cells finished so far (in "
                        "--out or --records), e.g. while the study runs elsewhere")
    p.add_argument("overrides", nargs="*", type=override, metavar="key=value",
                   help="config overrides given to every search, training and test, "
                        "e.g. data.synthetic.level=easy")


def _rows(asked: list[str] | None, overrides: list[str]) -> list[str]:
    """The rows asked for, in table order; key=value items that --rows swallowed are
    appended to ``overrides``."""
    if asked is None:
        return list(ROWS)
    names = []
    for item in asked:
        if "=" in item:
            overrides.append(item)
        elif item not in ROW_SPECS:
            raise UserError(f"--rows: unknown row {item!r} (choose from {', '.join(ROWS)})")
        else:
            names.append(item)
    if not names:
        raise UserError("--rows: give at least one row")
    return [r for r in ROWS if r in names]


def make_plan(args: argparse.Namespace) -> Plan:
    """Resolve the options; a bad one is a UserError (one line, exit code 2)."""
    from autopose.io import check_writable  # torch: not for every command's parser

    overrides = list(args.overrides)
    rows = _rows(args.rows, overrides)
    for flag, path in (("--search-config", args.search_config),
                       ("--train-config", args.train_config)):
        if not path.is_file():
            raise UserError(f"{flag}: {path}: no such file")
    out = args.out.resolve()
    check_writable(out, "--out")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out}: is a file, not a folder")
    records = None if args.records is None else args.records.resolve()
    if records is not None:
        if records.exists() and not records.is_dir():
            raise UserError(f"--records: {records}: is a file, not a folder")
        check_writable(records, "--records")
    seeds = {row: list(range(seed_count(row, args.quick, args.seeds))) for row in ROWS}
    env = dict(os.environ)
    search_ov, train_ov = list(overrides), list(overrides)
    if args.quick:
        # Quick runs keep their generated set under --out, so the user's cache stays
        # untouched; one thread is what the quick study is sized for.
        env["AUTOPOSE_CACHE"] = str(out / "cache")
        env["OMP_NUM_THREADS"] = "1"
        # The quick settings come first, so that the user's overrides can change any.
        search_ov = QUICK_DATA + QUICK_SEARCH + search_ov
        train_ov = QUICK_DATA + QUICK_TRAIN + train_ov
    if args.jobs > 1:
        env["OMP_NUM_THREADS"] = "1"
    small = args.small_input or (QUICK_SMALL_INPUT if args.quick else DEFAULT_SMALL_INPUT)
    # Absolute paths: the commands do not depend on the folder the study was started from.
    return Plan(out=out, rows=rows, seeds=seeds, jobs=args.jobs, quick=args.quick,
                search_config=args.search_config.resolve(),
                train_config=args.train_config.resolve(), overrides=overrides,
                small_input=small, keep_search_checkpoints=args.keep_search_checkpoints,
                records=records, report=args.report,
                search_overrides=search_ov,
                train_overrides=train_ov, env=env)


def check_overrides(plan: Plan) -> None:
    """Load both configs with every row's overrides in this process (no data is read), so
    that an unknown key or a bad value stops the study before any stage runs."""
    searched = [r for r in plan.rows if ROW_SPECS[r].searched]
    if BASELINE_ROW in plan.rows and REFERENCE_ROW not in searched:
        searched.append(REFERENCE_ROW)  # the HRNet width needs its searches
    for row in searched:
        load_config(plan.search_config,
                    plan.search_overrides + row_search_overrides(row, plan.small_input))
    load_config(plan.train_config, plan.train_overrides)
