"""``autopose.study.resume`` (and ``run.build_tasks``): what a restarted study runs, decided
from fabricated markers in ``--out`` and ``--records``, without running any stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from autopose.cli import build_parser
from autopose.config import CONFIG_DIR
from autopose.errors import UserError
from autopose.study.commands import CommandForm, search_argv, seed_dir, train_argv
from autopose.study.commands import test_argv as stage_test_argv  # not a test
from autopose.study.options import make_plan
from autopose.study.processes import Processes
from autopose.study.records import Markers, marker_name
from autopose.study.resume import REDO, RUN, SKIP, apply_resumption, plan_resumption
from autopose.study.run import build_tasks, report_study, run_study_command
from autopose.study.stages import WIDTH, Study, digest

GENOTYPE = CONFIG_DIR / "synthetic" / "genotype_short.json"
# Two autopose seeds (the HRNet width is matched to their mean), one elsewhere.
ROWS = ["--rows", "autopose", "genotype_short", "hrnet_w32", "--seeds", "2"]


def _study(out: Path, records: Path | None, *args: str) -> Study:
    argv = ["study", "--quick", "--out", str(out), *ROWS, *args]
    if records is not None:
        argv += ["--records", str(records)]
    plan = make_plan(build_parser().parse_args(argv))
    return Study(plan, CommandForm(plan.out), Markers(plan.out, plan.records),
                 Processes(plan.env))


def _finish(study: Study) -> None:
    """Write the markers and files of a finished study, as its stages would."""
    plan, form, m = study.plan, study.form, study.markers
    width = 0.1

    def stage(row: str, seed: int, kind: str, argv: list[str], **extra: Any) -> None:
        m.write(marker_name(row, seed, kind), {"argv": form.portable(argv), **extra})

    for seed in plan.seeds["autopose"]:
        genotype = seed_dir(plan, "autopose", seed) / "search" / "genotype.json"
        genotype.parent.mkdir(parents=True)
        shutil.copy(GENOTYPE, genotype)
        m.restore_genotype("autopose", seed)
        stage("autopose", seed, "search", search_argv(plan, "autopose", seed),
              genotype_sha256=digest(json.loads(GENOTYPE.read_text())))
    m.write(WIDTH, {"made_from": study.width_made_from(), "width_mult": width})
    for row in plan.rows:
        w = width if row == "hrnet_w32" else None
        for seed in plan.seeds[row]:
            stage(row, seed, "train", train_argv(plan, row, seed, w))
            (seed_dir(plan, row, seed) / "train").mkdir(parents=True, exist_ok=True)
            (seed_dir(plan, row, seed) / "train" / "best.pt").write_bytes(b"")
            stage(row, seed, "test", stage_test_argv(plan, row, seed, w), AP=0.5)
            m.write(marker_name(row, seed, "result"), {"AP": 0.5})


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file()}


def _statuses(study: Study) -> tuple[dict[tuple[str, int], dict[str, str]], str | None]:
    res = plan_resumption(study)
    return res.cells, res.width


def test_a_finished_study_runs_nothing(tmp_path: Path) -> None:
    study = _study(tmp_path / "s", tmp_path / "rec")
    _finish(study)
    res = plan_resumption(study)
    assert res.width == SKIP and res.recorded_width == 0.1
    assert {s for stages in res.cells.values() for s in stages.values()} == {SKIP}
    assert res.count(SKIP) == 2 * (4 + 3 + 3) + 1  # autopose, genotype_short, hrnet; width
    assert build_tasks(study, res) == []


def test_a_fresh_clone_restores_every_record(tmp_path: Path) -> None:
    first = _study(tmp_path / "s", tmp_path / "rec")
    _finish(first)
    fresh = _study(tmp_path / "clone", tmp_path / "rec")  # no best.pt, no genotype in out
    res = plan_resumption(fresh)
    assert {s for stages in res.cells.values() for s in stages.values()} == {SKIP}
    assert not (tmp_path / "clone").exists()  # deciding writes nothing
    apply_resumption(fresh, res)
    got = _files(tmp_path / "clone")
    assert "autopose/seed1/search/genotype.json" in got and "hrnet_w32/width.json" in got
    assert sorted(k for k in got if k.endswith(".json")) == sorted(
        k for k in _files(tmp_path / "s") if k.endswith(".json"))
    assert fresh.width == 0.1


def test_a_marker_made_by_another_command_is_refused(tmp_path: Path) -> None:
    _finish(_study(tmp_path / "s", tmp_path / "rec"))
    before = _files(tmp_path)
    other = _study(tmp_path / "s", tmp_path / "rec", "train.lr=0.01")
    with pytest.raises(UserError, match=r"/s/autopose/seed0/search.json: made by another command "
                                        r"\(now also train.lr=0.01\)"):
        plan_resumption(other)
    assert _files(tmp_path) == before
    # In a fresh clone the committed record is the one refused.
    with pytest.raises(UserError, match=r"rec/autopose/seed0/search.json: made by another"):
        plan_resumption(_study(tmp_path / "clone", tmp_path / "rec",
                               "search.epochs=2"))


def test_a_training_whose_checkpoint_is_gone_is_trained_again(tmp_path: Path) -> None:
    study = _study(tmp_path / "s", tmp_path / "rec")
    _finish(study)
    cell = seed_dir(study.plan, "genotype_short", 0)
    (cell / "train" / "best.pt").unlink()
    for name in ("test", "result"):
        study.markers.forget(marker_name("genotype_short", 0, name))
    cells, width = _statuses(study)
    assert cells[("genotype_short", 0)] == {"train": REDO, "test": REDO, "result": REDO}
    assert width == SKIP and cells[("autopose", 0)]["train"] == SKIP
    # With its test and result recorded nothing needs the checkpoint: kept as it is.
    study2 = _study(tmp_path / "t", None)
    _finish(study2)
    (seed_dir(study2.plan, "autopose", 1) / "train" / "best.pt").unlink()
    assert _statuses(study2)[0][("autopose", 1)] == dict.fromkeys(
        ("search", "train", "test", "result"), SKIP)
    res = plan_resumption(study)
    apply_resumption(study, res)
    assert not (cell / "train").exists()  # redone from scratch, not resumed
    assert not (tmp_path / "rec" / "genotype_short" / "seed0" / "train.json").exists()
    tasks = build_tasks(study, res)
    assert [(t.name, t.deps, t.inline) for t in tasks] == [
        ("genotype_short/seed0/train", (), False),
        ("genotype_short/seed0/test", ("genotype_short/seed0/train",), False),
        ("genotype_short/seed0/result", ("genotype_short/seed0/test",), True)]


def test_a_search_to_finish_redoes_what_depends_on_it(tmp_path: Path) -> None:
    study = _study(tmp_path / "s", tmp_path / "rec")
    _finish(study)
    study.markers.forget(marker_name("autopose", 1, "search"))  # killed before its marker
    (seed_dir(study.plan, "autopose", 1) / "search" / "checkpoint.pt").write_bytes(b"")
    res = plan_resumption(study)
    assert res.cells[("autopose", 1)] == {"search": RUN, "train": REDO, "test": REDO,
                                          "result": REDO}
    assert res.cells[("autopose", 0)] == dict.fromkeys(("search", "train", "test", "result"),
                                                       SKIP)
    assert res.width == REDO
    assert res.cells[("hrnet_w32", 0)] == {"train": REDO, "test": REDO, "result": REDO}
    assert res.cells[("genotype_short", 0)]["train"] == SKIP
    apply_resumption(study, res)
    # The search's folder stays for --resume; the stale width record is gone.
    assert (seed_dir(study.plan, "autopose", 1) / "search" / "checkpoint.pt").exists()
    assert not (tmp_path / "s" / WIDTH).exists() and not (tmp_path / "rec" / WIDTH).exists()
    deps = {t.name: t.deps for t in build_tasks(study, res)}
    assert deps["hrnet_w32/width"] == ("autopose/seed1/search",)
    assert deps["hrnet_w32/seed0/train"] == ("hrnet_w32/width",)
    assert deps["autopose/seed1/train"] == ("autopose/seed1/search",)


def test_the_width_of_other_reference_networks_is_refused(tmp_path: Path) -> None:
    study = _study(tmp_path / "s", None)
    _finish(study)
    rec = json.loads((tmp_path / "s" / WIDTH).read_text())
    rec["made_from"]["reference_seeds"] = [0]
    (tmp_path / "s" / WIDTH).write_text(json.dumps(rec))
    with pytest.raises(UserError, match="hrnet_w32/width.json: matched to other autopose"):
        plan_resumption(study)


def test_the_hrnet_row_alone_runs_the_reference_searches(tmp_path: Path) -> None:
    plan = make_plan(build_parser().parse_args(
        ["study", "--quick", "--out", str(tmp_path), "--rows", "hrnet_w32", "--seeds", "2"]))
    study = Study(plan, CommandForm(plan.out), Markers(plan.out, None), Processes({}))
    res = plan_resumption(study)
    hrnet = {"train": REDO, "test": REDO, "result": REDO}
    assert res.cells == {("hrnet_w32", 0): hrnet, ("hrnet_w32", 1): hrnet,
                         ("autopose", 0): {"search": RUN}, ("autopose", 1): {"search": RUN}}
    assert res.width == RUN
    tasks = build_tasks(study, res)
    assert [t.name for t in tasks] == [
        "hrnet_w32/width", "autopose/seed0/search", "hrnet_w32/seed0/train",
        "hrnet_w32/seed0/test", "hrnet_w32/seed0/result", "autopose/seed1/search",
        "hrnet_w32/seed1/train", "hrnet_w32/seed1/test", "hrnet_w32/seed1/result"]
    assert tasks[0].deps == ("autopose/seed0/search", "autopose/seed1/search")


def _result(row: str, seed: int, ap: float) -> dict[str, Any]:
    return {"row": row, "seed": seed, "AP": ap, "AP50": 0.9, "params_m": 1.0, "gflops": 0.1,
            "search_cpu_min": 5.0, "train_cpu_min": 4.0}


def test_report_writes_the_finished_cells_and_runs_nothing(tmp_path: Path) -> None:
    # A study half way: autopose seeds 0 and 1 finished, genotype_short seed 0 only, the
    # HRNet row not started; records in rec/, as in a fresh clone.
    study = _study(tmp_path / "s", tmp_path / "rec")
    for row, seed, ap in (("autopose", 0, 0.6), ("autopose", 1, 0.4),
                          ("genotype_short", 0, 0.55)):
        study.markers.write(marker_name(row, seed, "result"), _result(row, seed, ap))
    before = _files(tmp_path / "rec")
    report = _study(tmp_path / "report", tmp_path / "rec", "--report")
    assert report.plan.report and not study.plan.report
    table = report_study(report.plan, None, ["study", "--report"])
    assert _files(tmp_path / "rec") == before  # no record changed
    out = tmp_path / "report"
    assert sorted(p.name for p in out.iterdir()) == ["results.jsonl", "study.json",
                                                     "study.png", "table.md"]
    rec = json.loads((out / "study.json").read_text())
    assert list(rec["rows"]) == ["autopose", "genotype_short"]  # hrnet_w32: nothing yet
    assert rec["rows"]["autopose"]["ap"] == [0.6, 0.4]
    assert rec["rows"]["autopose"]["ap_mean"] == pytest.approx(0.5)
    assert rec["rows"]["genotype_short"]["ap_ci95"] is None  # one seed: no interval
    assert rec["options"]["report"] is True
    assert "| autopose | 0.500 " in table and "hrnet_w32" not in table.split("##")[0]
    assert not any(p.name in ("search", "train", "test") for p in out.rglob("*"))


def test_report_names_the_ranking_file_as_given(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    study = _study(tmp_path / "s", tmp_path / "rec")
    study.markers.write(marker_name("autopose", 0, "result"), _result("autopose", 0, 0.6))
    monkeypatch.chdir(CONFIG_DIR.parent)  # the repository: docs/ranking/ranking.json
    argv = ["study", "--quick", "--out", str(tmp_path / "report"), *ROWS, "--records",
            str(tmp_path / "rec"), "--ranking", "docs/ranking/ranking.json", "--report"]
    assert run_study_command(build_parser().parse_args(argv), argv) == 0
    ranking = json.loads((tmp_path / "report" / "study.json").read_text())["ranking"]
    assert ranking["file"] == "docs/ranking/ranking.json"  # no machine's absolute path
    assert -1 <= ranking["tau"] <= 1


def test_report_leaves_resumed_stages_out_of_the_cpu_means(tmp_path: Path) -> None:
    # A resumed stage's record holds its last attempt only: autopose seed 1's search was
    # killed late and continued (1 CPU-minute recorded of a 5-minute search).
    study = _study(tmp_path / "s", tmp_path / "rec")
    for seed, cpu, resumed in ((0, 5.0, False), (1, 1.0, True)):
        study.markers.write(marker_name("autopose", seed, "result"),
                            _result("autopose", seed, 0.5) | {
                                "search_cpu_min": cpu, "search_resumed": resumed,
                                "train_resumed": False})
    report = _study(tmp_path / "report", tmp_path / "rec", "--report")
    table = report_study(report.plan, None, ["study", "--report"])
    row = next(line for line in table.splitlines() if line.startswith("| autopose |"))
    assert row.split("|")[6].strip() == "5.00"  # seed 0's alone, not (5 + 1) / 2
    assert "left out as resumed" in table and "autopose seed 1 search" in table
    rec = json.loads((tmp_path / "report" / "study.json").read_text())
    assert rec["rows"]["autopose"]["search_resumed"] == [False, True]
    assert rec["rows"]["autopose"]["search_cpu_min"] == [5.0, 1.0]  # as recorded
