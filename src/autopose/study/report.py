"""The study's outputs in ``--out``: ``results.jsonl`` (one line per row and seed),
``table.md``, ``study.json`` and ``study.png``, made from the cells' records.

``study.json``::

    {"rows": {"<row>": {"ap": [per-seed AP], "seeds": [...], "ap50": [...],
                        "params_m": [...], "gflops": [...], "search_cpu_min": [...],
                        "train_cpu_min": [...], "search_resumed": [...],
                        "train_resumed": [...], "ap_mean": m, "ap_ci95": [lo, hi]}, ...},
     "differences": {...}, "ordering": {...}, "ranking": {...} | null,
     "commands": [...], "commit": ..., "machine": {...}, "date": ..., "options": {...}}

Lists are per seed, in the order of ``seeds``; ``search_cpu_min`` is null for a row without
a search, ``ap_ci95`` null below two seeds. A stage ``*_resumed`` was continued after a
kill; its CPU-minutes are the last attempt's only, and the table's means leave it out. The
``hrnet_w32`` row also has ``width`` (the matched multiplier and the FLOPs it was matched
to).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
from pathlib import Path
from typing import Any

from autopose.io import atomic_write, git_commit, versions, write_json, write_text
from autopose.study.records import marker_name
from autopose.study.rows import BASELINE_ROW, ROW_SPECS, ROWS
from autopose.study.stages import WIDTH, Study
from autopose.study.stats import (BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, differences, mean,
                                  ordering, t_interval)

CONVENTIONS = ("AP: COCO AP of autopose test on the training config's val split; 95 % "
               "intervals: Student's t over seeds per row, Welch (Welch-Satterthwaite dof) "
               f"and percentile bootstrap ({BOOTSTRAP_RESAMPLES} resamples, seed "
               f"{BOOTSTRAP_SEED}) for differences; GFLOPs: multiply-accumulates / 1e9 of the "
               "trained network at the training input size; CPU time: user + system of the "
               "stage's process and its children")


def row_entry(results: list[dict[str, Any]]) -> dict[str, Any]:
    """A row of ``study.json`` from its cells' records (sorted by seed)."""
    ap = [r["AP"] for r in results]
    return {"ap": ap, "seeds": [r["seed"] for r in results],
            "ap50": [r["AP50"] for r in results],
            "params_m": [r["params_m"] for r in results],
            "gflops": [r["gflops"] for r in results],
            "search_cpu_min": [r["search_cpu_min"] for r in results],
            "train_cpu_min": [r["train_cpu_min"] for r in results],
            "search_resumed": [r.get("search_resumed") for r in results],
            "train_resumed": [r.get("train_resumed", False) for r in results],
            "ap_mean": mean(ap), "ap_ci95": t_interval(ap)}


def _mean_of(entry: dict[str, Any], key: str) -> float | None:
    return mean([v for v in entry[key] if v is not None])


def _whole_cpu_min(entry: dict[str, Any], stage: str) -> float | None:
    """Mean CPU-minutes of a row's ``stage`` ("search" or "train") over the stages that ran
    whole: a resumed stage's record holds its last attempt only (the killed attempt's CPU
    time died with it), so it would pull the mean down."""
    return mean([v for v, r in zip(entry[f"{stage}_cpu_min"], entry[f"{stage}_resumed"])
                 if v is not None and not r])


def _resumed_stages(record: dict[str, Any]) -> list[str]:
    return [f"{row} seed {seed} {stage}" for row, e in record["rows"].items()
            for stage in ("search", "train")
            for seed, r in zip(e["seeds"], e[f"{stage}_resumed"]) if r]


def _num(v: float | None, digits: int, sign: bool = False) -> str:
    return "-" if v is None else f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def _ci(ci: list[float] | None, sign: bool = False) -> str:
    return "-" if ci is None else f"[{_num(ci[0], 3, sign)}, {_num(ci[1], 3, sign)}]"


def _yes(v: bool | None) -> str:
    return "-" if v is None else "yes" if v else "no"


def format_table(record: dict[str, Any]) -> str:
    """``table.md``: the rows, the differences, the ordering check and the ranking's tau."""
    lines = ["| row | AP [95 % CI] | AP .5 | params (M) | GFLOPs | search CPU-min | "
             "train CPU-min | seeds |", "|---|---|---|---|---|---|---|---|"]
    for row, e in record["rows"].items():
        lines.append(f"| {row} | {_num(e['ap_mean'], 3)} {_ci(e['ap_ci95'])} | "
                     f"{_num(_mean_of(e, 'ap50'), 3)} | {_num(_mean_of(e, 'params_m'), 3)} | "
                     f"{_num(_mean_of(e, 'gflops'), 4)} | "
                     f"{_num(_whole_cpu_min(e, 'search'), 2)} | "
                     f"{_num(_whole_cpu_min(e, 'train'), 2)} | {len(e['seeds'])} |")
    resumed = _resumed_stages(record)
    lines += ["", "Mean over seeds; AP's 95 % interval is Student's t over the seeds (none "
              "for one seed)." + (" CPU-minutes: mean over the stages that ran whole; left "
                                  "out as resumed (their records hold the last attempt "
                                  f"only): {', '.join(resumed)}." if resumed else ""), ""]
    lines += ["## Differences of mean AP", "",
              "| difference | mean | Welch 95 % CI (dof) | bootstrap 95 % CI | "
              "interval above 0 (Welch, bootstrap) |", "|---|---|---|---|---|"]
    for name, d in record["differences"].items():
        dof = "" if d["welch"]["dof"] is None else f" ({d['welch']['dof']:.1f})"
        lines.append(f"| {name.replace('-', ' - ')} | {_num(d['difference'], 3, True)} | "
                     f"{_ci(d['welch']['ci95'], True)}{dof} | "
                     f"{_ci(d['bootstrap']['ci95'], True)} | "
                     f"{_yes(d['welch']['above_0'])}, {_yes(d['bootstrap']['above_0'])} |")
    lines += ["", "## The paper's ordering of mean AP", "",
              "| comparison | difference | Welch 95 % CI | bootstrap 95 % CI | holds | "
              "interval above 0 (Welch) |", "|---|---|---|---|---|---|"]
    order = record["ordering"]
    for c in order["comparisons"]:
        lines.append(f"| {c['lower']} < {c['higher']} | {_num(c['difference'], 3, True)} | "
                     f"{_ci(c['welch']['ci95'], True)} | {_ci(c['bootstrap']['ci95'], True)} "
                     f"| {_yes(c['holds'])} | {_yes(c['welch']['above_0'])} |")
    held = [f"{c['lower']} < {c['higher']}" for c in order["comparisons"] if c["holds"]]
    failed = [f"{c['lower']} < {c['higher']}" for c in order["comparisons"] if not c["holds"]]
    lines += ["", f"Holds in the means: {', '.join(held) or 'none'}. "
              f"Does not hold: {', '.join(failed) or 'none'}."
              + (f" Not measured: {', '.join(order['missing'])}." if order["missing"] else "")]
    ranking = record["ranking"]
    if ranking is not None:
        tau = "undefined" if ranking["tau"] is None else f"{ranking['tau']:+.3f}"
        lines += ["", "## The search's reward ranking", "",
                  f"Kendall tau of the shared-weight rewards against trained AP: {tau}, 95 % "
                  f"bootstrap interval {_ci(ranking['ci95'], True)} ({ranking['n']} "
                  f"architectures; {ranking['file']}, commit {ranking['commit']}, "
                  f"{ranking['date']})."]
    return "\n".join(lines) + "\n"


def plot(rows: dict[str, dict[str, Any]], path: Path) -> None:
    """``study.png``: left, AP per row (per-seed dots, mean with its 95 % interval); right,
    AP against GFLOPs (dots per seed, larger markers for the row means)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = {row: plt.get_cmap("tab10")(i % 10) for i, row in enumerate(ROWS)}
    for i, (row, e) in enumerate(rows.items()):
        n = len(e["ap"])
        jitter = [i + 0.25 * ((k + 0.5) / n - 0.5) for k in range(n)]
        ax1.scatter(jitter, e["ap"], color=colors[row], alpha=0.5, s=18, zorder=2)
        ci = e["ap_ci95"]
        err = None if ci is None else [[e["ap_mean"] - ci[0]], [ci[1] - e["ap_mean"]]]
        ax1.errorbar([i], [e["ap_mean"]], yerr=err, fmt="D", color=colors[row], capsize=5,
                     markersize=7, zorder=3)
        ax2.scatter(e["gflops"], e["ap"], color=colors[row], alpha=0.45, s=20)
        ax2.scatter([mean(e["gflops"])], [e["ap_mean"]], color=colors[row], marker="D", s=70,
                    edgecolors="black", label=f"{row} (n={n})")
    ax1.set_xticks(range(len(rows)), list(rows), rotation=30, ha="right")
    ax1.set_ylim(bottom=0)
    ax1.set_ylabel("test AP")
    ax1.set_title("AP per row: seeds (dots), mean with 95 % t-interval")
    ax2.set_xlabel("GFLOPs at the training input size")
    ax2.set_ylim(bottom=0)
    ax2.set_ylabel("test AP")
    ax2.set_title("AP against GFLOPs (dots: seeds; diamonds: means)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def commands(study: Study, cells: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Every stage's command (portable form), from its marker, with its commit."""
    out = []
    for row, seed in cells:
        for kind in ("search", "train", "test"):
            rec = study.markers.read(marker_name(row, seed, kind))
            if rec is not None:
                out.append({"row": row, "seed": seed, "stage": kind,
                            "command": rec["command"], "commit": rec.get("commit"),
                            "finished_at": rec.get("finished_at")})
    return out


def write_outputs(study: Study, results: list[dict[str, Any]], cells: list[tuple[str, int]],
                  ranking: dict[str, Any] | None, argv: list[str]) -> str:
    """results.jsonl, table.md, study.json and study.png; returns the table."""
    plan, form = study.plan, study.form
    # A row with no finished cell yet (``--report`` of a running study) is left out.
    rows = {row: row_entry(sorted((r for r in results if r["row"] == row),
                                  key=lambda r: r["seed"]))
            for row in plan.rows if any(r["row"] == row for r in results)}
    if BASELINE_ROW in rows:
        width = study.markers.read(WIDTH) or {}
        rows[BASELINE_ROW]["width"] = {k: width.get(k) for k in
                                       ("width_mult", "target_gflops", "gflops")}
    ap = {row: e["ap"] for row, e in rows.items()}
    record = {
        "rows": rows, "differences": differences(ap), "ordering": ordering(ap),
        "ranking": ranking, "commands": commands(study, cells), "commit": git_commit(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "versions": versions(),
                    "OMP_NUM_THREADS": plan.env.get("OMP_NUM_THREADS")},
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "options": {"rows": plan.rows, "seeds": {r: plan.seeds[r] for r in plan.rows},
                    "jobs": plan.jobs, "quick": plan.quick,
                    "search_config": form.portable_text(str(plan.search_config)),
                    "train_config": form.portable_text(str(plan.train_config)),
                    "overrides": plan.overrides, "small_input": list(plan.small_input),
                    "records": None if plan.records is None else str(plan.records),
                    "keep_search_checkpoints": plan.keep_search_checkpoints,
                    "report": plan.report,
                    "search_overrides": plan.search_overrides,
                    "train_overrides": plan.train_overrides,
                    "labels": {r: ROW_SPECS[r].label for r in plan.rows},
                    "study_command": shlex.join(["autopose", *argv]),
                    "conventions": CONVENTIONS}}
    table = format_table(record)
    write_text(plan.out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in results))
    write_text(plan.out / "table.md", table)
    write_json(plan.out / "study.json", record)
    plot(rows, plan.out / "study.png")
    return table
