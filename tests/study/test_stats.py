"""``autopose.study.stats``: intervals and comparisons against known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau
from scipy.stats import t as student_t
from scipy.stats import ttest_ind

from autopose.errors import UserError
from autopose.study.stats import (bootstrap, compare, differences, ordering, read_ranking,
                                  t_interval, welch)

REPO = Path(__file__).resolve().parents[2]


def test_t_interval_is_students() -> None:
    # mean 3, sample sd sqrt(2.5), n 5: half-width t(0.975, 4) * sd / sqrt(5), t = 2.7764...
    lo, hi = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert (lo, hi) == pytest.approx((3 - half, 3 + half), abs=1e-12)
    assert t_interval([0.4]) is None and t_interval([]) is None  # one seed: no interval
    assert t_interval([0.3, 0.3]) == pytest.approx([0.3, 0.3])  # no spread, no width


def test_welch_matches_the_hand_computation_and_scipy() -> None:
    a, b = [1.0, 2.0, 3.0], [2.0, 3.0, 5.0, 6.0]
    w = welch(a, b)
    # By hand: variances 1 and 10/3, so q = 1/3 and 5/6; Welch-Satterthwaite dof
    # (7/6)^2 / ((1/3)^2 / 2 + (5/6)^2 / 3) = 147/31.
    assert w["dof"] == pytest.approx(147 / 31, rel=1e-12)
    assert w["se"] == pytest.approx(math.sqrt(7 / 6), rel=1e-12)
    half = student_t.ppf(0.975, 147 / 31) * math.sqrt(7 / 6)
    assert w["ci95"] == pytest.approx([-2 - half, -2 + half], rel=1e-12)
    ref = ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert w["ci95"] == pytest.approx([ref.low, ref.high], rel=1e-9)
    # Below two values on either side, or no spread on both, there is no interval.
    assert welch([1.0], b)["ci95"] is None and welch(a, [2.0])["ci95"] is None
    assert welch([1.0, 1.0], [2.0, 2.0])["ci95"] is None


def test_bootstrap_covers_a_planted_difference() -> None:
    rng = np.random.default_rng(123)
    covered, excluded_zero = 0, 0
    for _ in range(100):
        a = rng.normal(0.50, 0.08, 8).tolist()
        b = rng.normal(0.38, 0.08, 8).tolist()
        lo, hi = bootstrap(a, b, resamples=2000, seed=0)
        covered += lo <= 0.12 <= hi
        excluded_zero += lo > 0
    # A 95 % percentile interval with 8 per group covers the true 0.12 about 90-95 % of the
    # time (it is a little narrow at this n); with a difference of 1.5 sd it is mostly
    # above 0.
    assert covered >= 85, covered
    assert excluded_zero >= 80, excluded_zero
    # No difference planted: the interval straddles 0 in most draws.
    straddles = sum(lo <= 0 <= hi for lo, hi in (
        bootstrap(rng.normal(0.4, 0.1, 8).tolist(), rng.normal(0.4, 0.1, 8).tolist(),
                  resamples=2000, seed=0) for _ in range(50)))
    assert straddles >= 42, straddles


def test_bootstrap_is_seeded_and_needs_two_values() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random(8).tolist(), rng.random(6).tolist()
    assert bootstrap(a, b, seed=1) == bootstrap(a, b, seed=1)
    assert bootstrap(a, b, seed=1) != bootstrap(a, b, seed=2)
    assert bootstrap([0.2], b) is None and bootstrap(a, [0.1]) is None


def test_compare_and_differences() -> None:
    c = compare([0.5, 0.6, 0.7], [0.1, 0.2, 0.3])
    assert c["difference"] == pytest.approx(0.4) and c["n"] == [3, 3]
    assert c["welch"]["above_0"] is True and c["bootstrap"]["above_0"] is True
    assert c["bootstrap"]["resamples"] == 10_000
    one = compare([0.5], [0.1, 0.2])  # n = 1: the difference, no interval
    assert one["difference"] == pytest.approx(0.35)
    assert one["welch"]["ci95"] is None and one["welch"]["above_0"] is None
    assert one["bootstrap"]["ci95"] is None
    d = differences({"autopose": [0.5, 0.6], "random": [0.4, 0.45], "concat": [0.1]})
    assert list(d) == ["autopose-random"]  # single_branch not measured: left out
    assert d["autopose-random"]["difference"] == pytest.approx(0.125)


def test_ordering_says_which_comparisons_hold() -> None:
    ap = {"single_branch": [0.1, 0.12], "concat": [0.2, 0.22], "all_branches": [0.3, 0.32],
          "autopose": [0.4, 0.42], "small_input": [0.5, 0.52]}
    o = ordering(ap)
    got = {(c["lower"], c["higher"]): c["holds"] for c in o["comparisons"]}
    assert got == {("single_branch", "concat"): True, ("concat", "all_branches"): True,
                   ("all_branches", "autopose"): True, ("small_input", "autopose"): False}
    assert o["all_hold"] is False and o["missing"] == []
    first = o["comparisons"][0]
    assert first["difference"] == pytest.approx(0.1)  # higher minus lower
    assert first["welch"]["ci95"][0] > 0
    del ap["small_input"]
    o = ordering(ap)
    assert o["missing"] == ["small_input < autopose"] and o["all_hold"] is None


def test_read_ranking(tmp_path: Path) -> None:
    path = REPO / "docs" / "ranking" / "ranking.json"
    r = read_ranking(path)
    # The committed ranking's tau, recomputed from its own per-architecture records (not a
    # number pinned here, which a remeasured ranking would make stale).
    archs = json.loads(path.read_text())["archs"]
    expected = kendalltau([a["reward"] for a in archs], [a["AP"] for a in archs]).statistic
    assert r["tau"] == pytest.approx(expected, abs=1e-9)
    assert r["ci95"][0] < r["tau"] < r["ci95"][1]
    assert r["commit"] and r["date"] and r["n"] == 16
    bad = tmp_path / "ranking.json"
    bad.write_text('{"statistics": {"rankers": {}}}')
    with pytest.raises(UserError, match="not a ranking.json of bench/ranking.py"):
        read_ranking(bad)
