"""The study's statistics: per-row means and 95 % t-intervals over seeds, differences of two
rows with Welch and bootstrap intervals, the paper's ordering, and the ranking's tau.

Seeds are independent replicates of a whole row (search, training and test), so two rows
are compared as independent samples of unequal variance: Welch's t-interval (the
Welch-Satterthwaite degrees of freedom), and a percentile bootstrap of the difference of
means (each row resampled with replacement, seeded) that does not assume normality.
Below two seeds in a row no interval is defined: it is None (``-`` in the table).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from autopose.errors import UserError
from autopose.io import read_json

LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
# The differences the study is for: does the search beat random search (same budget), and
# does searching the branches beat a single branch per stage?
DIFFERENCES = (("autopose", "random"), ("autopose", "single_branch"))
# The paper's ordering of mean AP (tables 4 and 5): (lower, higher) pairs.
ORDERING = (("single_branch", "concat"), ("concat", "all_branches"),
            ("all_branches", "autopose"), ("small_input", "autopose"))


def mean(values: list[float]) -> float | None:
    """The mean, None for no values."""
    return statistics.fmean(values) if values else None


def t_interval(values: list[float], level: float = LEVEL) -> list[float] | None:
    """Student's t-interval of the mean, ``[lo, hi]``; None below two values."""
    from scipy.stats import t

    n = len(values)
    if n < 2:
        return None
    m, s = statistics.fmean(values), statistics.stdev(values)
    half = float(t.ppf((1 + level) / 2, n - 1)) * s / math.sqrt(n)
    return [m - half, m + half]


def welch(a: list[float], b: list[float], level: float = LEVEL) -> dict[str, Any]:
    """Welch's interval of mean(a) - mean(b): ``ci95`` (None below two values in either, or
    with no spread in both), ``dof`` (Welch-Satterthwaite) and the standard error."""
    from scipy.stats import t

    na, nb = len(a), len(b)
    out: dict[str, Any] = {"ci95": None, "dof": None, "se": None}
    if na < 2 or nb < 2:
        return out
    qa, qb = statistics.variance(a) / na, statistics.variance(b) / nb
    if qa + qb == 0:
        return out
    dof = (qa + qb) ** 2 / (qa ** 2 / (na - 1) + qb ** 2 / (nb - 1))
    se = math.sqrt(qa + qb)
    d = statistics.fmean(a) - statistics.fmean(b)
    half = float(t.ppf((1 + level) / 2, dof)) * se
    return {"ci95": [d - half, d + half], "dof": dof, "se": se}


def bootstrap(a: list[float], b: list[float], resamples: int = BOOTSTRAP_RESAMPLES,
              seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> list[float] | None:
    """Percentile bootstrap interval of mean(a) - mean(b): each sample resampled with
    replacement ``resamples`` times (a generator seeded with ``seed``); None below two
    values in either (a one-value sample has no spread to resample)."""
    import numpy as np

    if len(a) < 2 or len(b) < 2:
        return None
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a, float), np.asarray(b, float)
    diffs = (x[rng.integers(0, len(x), (resamples, len(x)))].mean(1)
             - y[rng.integers(0, len(y), (resamples, len(y)))].mean(1))
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(diffs, [tail, 100 - tail])
    return [float(lo), float(hi)]


def compare(a: list[float], b: list[float]) -> dict[str, Any]:
    """mean(a) - mean(b) with both intervals, and whether each lies above 0."""
    w = welch(a, b)
    boot = bootstrap(a, b)
    return {"difference": statistics.fmean(a) - statistics.fmean(b), "n": [len(a), len(b)],
            "welch": w | {"above_0": None if w["ci95"] is None else w["ci95"][0] > 0},
            "bootstrap": {"ci95": boot, "resamples": BOOTSTRAP_RESAMPLES,
                          "seed": BOOTSTRAP_SEED,
                          "above_0": None if boot is None else boot[0] > 0}}


def differences(ap: dict[str, list[float]]) -> dict[str, Any]:
    """``"autopose-random"`` and ``"autopose-single_branch"`` (the rows measured)."""
    return {f"{a}-{b}": compare(ap[a], ap[b]) for a, b in DIFFERENCES
            if ap.get(a) and ap.get(b)}


def ordering(ap: dict[str, list[float]]) -> dict[str, Any]:
    """Whether mean AP follows the paper's order: each (lower, higher) pair with the
    difference higher - lower, its intervals, and ``holds`` (the difference is above 0).
    ``all_hold`` is None while a pair is not measured."""
    comparisons, missing = [], []
    for lower, higher in ORDERING:
        if not ap.get(lower) or not ap.get(higher):
            missing.append(f"{lower} < {higher}")
            continue
        c = compare(ap[higher], ap[lower])
        comparisons.append({"lower": lower, "higher": higher, **c,
                            "holds": c["difference"] > 0})
    return {"comparisons": comparisons, "missing": missing,
            "all_hold": None if missing else all(c["holds"] for c in comparisons)}


def read_ranking(path: Path) -> dict[str, Any]:
    """The Kendall tau of the shared-weight rewards against trained AP from a
    ``ranking.json`` of ``bench/ranking.py``, with its interval, commit and date."""
    rec = read_json(path, "ranking.json")
    try:
        stats = rec["statistics"]
        reward = stats["rankers"]["reward"]
        tau, ci = reward["tau"], reward["ci95"]
    except (KeyError, TypeError):
        raise UserError(f"{path}: --ranking: not a ranking.json of bench/ranking.py (no "
                        "statistics.rankers.reward.tau and .ci95)") from None
    if not (tau is None or isinstance(tau, (int, float))) or not (
            ci is None or (isinstance(ci, list) and len(ci) == 2)):
        raise UserError(f"{path}: --ranking: statistics.rankers.reward: tau must be a number "
                        "and ci95 a [lo, hi] pair")
    return {"tau": tau, "ci95": ci, "n": stats.get("n"), "resamples": stats.get("resamples"),
            "commit": rec.get("git_commit"), "date": rec.get("date"), "file": str(path)}
