"""The command of each stage, and the portable form it is recorded and compared in.

A stage's marker records the command that made it. A rerun compares the command it would
run with the recorded one, so that a marker made by another command (other overrides,
another config) is refused instead of mixing two settings in one table. The record is
*portable*: the study folder, the package's config folder and the interpreter are written
as ``{out}``, ``{configs}`` and ``python``, so that records committed from one checkout
resume a study in a fresh clone somewhere else. What only says *how* a stage ran
(``--resume``, the one-thread overrides of ``--jobs K``) is left out of the comparison.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from autopose.config import CONFIG_DIR
from autopose.study.options import Plan
from autopose.study.rows import ROW_SPECS, row_search_overrides

# With --jobs K > 1 every stage runs on one thread (with OMP_NUM_THREADS=1): K stages on
# K cores, none spinning threads on another's core.
THREAD_OVERRIDES = ("search.threads=1", "search.reward_threads=1", "train.threads=1")
RESUME = "--resume"
HOW = frozenset((RESUME, *THREAD_OVERRIDES))
OUT, CONFIGS, PYTHON = "{out}", "{configs}", "python"


def autopose_argv(*args: str) -> list[str]:
    """``python -m autopose ARGS``, with this interpreter (the study's virtual env)."""
    return [sys.executable, "-m", "autopose", *args]


@dataclass(frozen=True)
class CommandForm:
    """The portable form of commands and paths under one study folder."""

    out: Path
    configs: Path = CONFIG_DIR

    def _roots(self) -> list[tuple[str, str]]:
        # The longer root first, should one folder be inside the other.
        roots = [(str(self.out), OUT), (str(self.configs), CONFIGS)]
        return sorted(roots, key=lambda r: -len(r[0]))

    def portable_text(self, text: str) -> str:
        """``text`` (an argument, or a ``key=value``'s value) with a leading study or config
        folder written as ``{out}`` / ``{configs}``."""
        for root, name in self._roots():
            text = re.sub(rf"(?:^|(?<==)){re.escape(root)}(?=/|$)", name, text)
        return text

    def portable(self, argv: list[str]) -> list[str]:
        """``argv`` in its portable form (idempotent: a portable one is returned as is)."""
        return [PYTHON, *(self.portable_text(a) for a in argv[1:])]

    def local(self, text: str) -> str:
        """The inverse of :meth:`portable_text`: ``{out}/x`` -> ``OUT/x`` in this checkout."""
        for root, name in self._roots():
            text = re.sub(rf"(?:^|(?<==)){re.escape(name)}(?=/|$)", root, text)
        return text

    def what(self, argv: list[str]) -> list[str]:
        """What a command does: its portable form without the interpreter and without
        :data:`HOW` (how it ran)."""
        return [a for a in self.portable(argv)[1:] if a not in HOW]

    def difference(self, before: list[str], now: list[str]) -> str | None:
        """None when ``before`` and ``now`` do the same, else a short description."""
        a, b = self.what(before), self.what(now)
        if a == b:
            return None
        n = min(len(a), len(b))
        return next((f"{x!r} then, {y!r} now" for x, y in zip(a, b) if x != y),
                    f"now also {shlex.join(b[n:])}" if len(b) > n
                    else f"then also {shlex.join(a[n:])}")


# ---------------------------------------------------------------------------- the stages


def seed_dir(plan: Plan, row: str, seed: int) -> Path:
    """``OUT/ROW/seedS``: the folder of one cell of the table."""
    return plan.out / row / f"seed{seed}"


def _how(plan: Plan) -> list[str]:
    return list(THREAD_OVERRIDES) if plan.one_thread else []


def search_argv(plan: Plan, row: str, seed: int) -> list[str]:
    """``autopose search`` of a searched row: the user's overrides, then the row's."""
    spec = ROW_SPECS[row]
    assert spec.strategy is not None, row
    return autopose_argv("search", "--config", str(plan.search_config),
                         "--out", str(seed_dir(plan, row, seed) / "search"),
                         "--seed", str(seed), "--strategy", spec.strategy,
                         *plan.search_overrides, *row_search_overrides(row, plan.small_input),
                         *_how(plan))


def _network(plan: Plan, row: str, seed: int, width: float | None) -> tuple[list[str],
                                                                          list[str]]:
    """The ``--genotype``/``--model`` arguments of the row's training, and the overrides
    that follow the user's (the matched width of a baseline)."""
    spec = ROW_SPECS[row]
    if spec.baseline is not None:
        assert width is not None, row
        return ["--model", spec.baseline], [f"train.width_mult={width:g}"]
    genotype = spec.genotype or seed_dir(plan, row, seed) / "search" / "genotype.json"
    return ["--genotype", str(genotype)], []


def train_argv(plan: Plan, row: str, seed: int, width: float | None = None) -> list[str]:
    """``autopose train`` of the row's network with the training config."""
    network, extra = _network(plan, row, seed, width)
    return autopose_argv("train", "--config", str(plan.train_config), *network,
                         "--out", str(seed_dir(plan, row, seed) / "train"), f"seed={seed}",
                         *plan.train_overrides, *extra, *_how(plan))


def test_argv(plan: Plan, row: str, seed: int, width: float | None = None) -> list[str]:
    """``autopose test`` of the trained network's ``best.pt`` with the training config."""
    d = seed_dir(plan, row, seed)
    _, extra = _network(plan, row, seed, width)
    return autopose_argv("test", "--checkpoint", str(d / "train" / "best.pt"),
                         "--config", str(plan.train_config), "--out", str(d / "test"),
                         f"seed={seed}", *plan.train_overrides, *extra, *_how(plan))
