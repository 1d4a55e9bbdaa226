"""``autopose study``'s options and the commands they give each stage: bad options are one
line and exit code 2 with nothing run; ``--jobs K`` changes only how stages run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autopose.cli import build_parser, main
from autopose.config import CONFIG_DIR
from autopose.study.commands import THREAD_OVERRIDES, CommandForm, search_argv, train_argv
from autopose.study.commands import test_argv as stage_test_argv  # not a test
from autopose.study.options import Plan, make_plan
from autopose.study.rows import QUICK_DATA, ROWS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _plan(*args: str) -> Plan:
    return make_plan(build_parser().parse_args(["study", *args]))


def _call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        code = main(["study", *args])
    except SystemExit as e:  # argparse
        code = int(e.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--rows", "nope"], "--rows: unknown row 'nope'"),
    (["--jobs", "0"], "argument --jobs: expected an integer >= 1, got 0"),
    (["--seeds", "0"], "argument --seeds: expected an integer >= 1, got 0"),
    (["--seeds", "two"], "argument --seeds: expected an integer, got 'two'"),
    (["--small-input", "96by72"], "HEIGHTxWIDTH"),
    (["novalue"], "expected key=value, got 'novalue'"),
    (["--train-config", "missing.yaml"], "--train-config: missing.yaml: no such file"),
    (["train.no_such_key=1"], "train.no_such_key: unknown key"),
    # A key=value after --rows is an override, checked as one.
    (["--rows", "autopose", "train.no_such_key=1"], "train.no_such_key: unknown key"),
    # A choice the config does not list is refused before any stage runs.
    (["search.reward=bogus"], "search.reward: expected one of ap, oks"),
    (["--ranking", "missing.json"], "missing.json: ranking.json not found"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              args: list[str], message: str) -> None:
    code, err = _call(capsys, "--out", str(tmp_path / "s"), *args)
    assert code == 2, err
    assert err.startswith("autopose study: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s").exists()  # nothing was run


def test_a_bad_option_from_the_command_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "autopose", "study", "--out",
                           str(tmp_path / "s"), "--jobs", "0"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr == ("autopose study: error: argument --jobs: expected an integer >= 1, "
                           "got 0\n")
    assert not (tmp_path / "s").exists()


def test_seeds_per_row(tmp_path: Path) -> None:
    out = str(tmp_path / "s")
    protocol = _plan("--out", out).seeds
    assert protocol["autopose"] == protocol["random"] == list(range(8))
    assert all(protocol[r] == list(range(5)) for r in ROWS if r not in ("autopose", "random"))
    assert all(seeds == [0] for seeds in _plan("--out", out, "--quick").seeds.values())
    for flags in ([], ["--quick"]):
        assert set(map(tuple, _plan("--out", out, "--seeds", "3", *flags).seeds.values())) == \
            {(0, 1, 2)}


def test_rows_in_table_order_and_overrides_after_them(tmp_path: Path) -> None:
    plan = _plan("--out", str(tmp_path), "--rows", "hrnet_w32", "autopose",
                 "data.synthetic.level=easy")
    assert plan.rows == ["autopose", "hrnet_w32"]
    assert plan.overrides == ["data.synthetic.level=easy"]
    assert plan.train_overrides[-1] == plan.search_overrides[-1] == "data.synthetic.level=easy"
    assert _plan("--out", str(tmp_path)).rows == list(ROWS)


def _commands(plan: Plan) -> list[list[str]]:
    out = []
    for row in ROWS:
        for seed in plan.seeds[row]:
            if row not in ("genotype_short", "hrnet_w32"):
                out.append(search_argv(plan, row, seed))
            width = 0.5 if row == "hrnet_w32" else None
            out += [train_argv(plan, row, seed, width), stage_test_argv(plan, row, seed, width)]
    return out


def test_jobs_changes_only_how_stages_run(tmp_path: Path) -> None:
    one = _plan("--out", str(tmp_path), "--quick")
    two = _plan("--out", str(tmp_path), "--quick", "--jobs", "2")
    assert two.env["OMP_NUM_THREADS"] == "1" and two.jobs == 2
    a, b = _commands(one), _commands(two)
    assert len(a) == len(b) == 6 * 3 + 2 * 2  # 6 searches, 8 trainings, 8 tests
    for x, y in zip(a, b):
        assert y == x + list(THREAD_OVERRIDES)
        assert CommandForm(two.out).difference(x, y) is None


def test_the_recorded_form_is_portable(tmp_path: Path) -> None:
    plan = _plan("--out", str(tmp_path / "s"), "--quick")
    form = CommandForm(plan.out)
    argv = train_argv(plan, "genotype_short", 0)
    portable = form.portable(argv)
    assert portable[:4] == ["python", "-m", "autopose", "train"]
    assert portable[portable.index("--config") + 1] == "{configs}/synthetic/train_short.yaml"
    assert portable[portable.index("--genotype") + 1] == \
        "{configs}/synthetic/genotype_short.json"
    assert portable[portable.index("--out") + 1] == "{out}/genotype_short/seed0/train"
    assert portable[-len(QUICK_DATA) - 4:-4] == QUICK_DATA
    assert form.portable(portable) == portable
    assert str(tmp_path) not in " ".join(portable) and sys.executable not in portable
    # Another checkout and study folder read the same record back as their own paths.
    other = CommandForm(Path("/elsewhere/s"), Path("/clone/configs"))
    assert other.local("{out}/autopose/seed0/search/genotype.json") == \
        "/elsewhere/s/autopose/seed0/search/genotype.json"
    assert other.difference(portable, [sys.executable] + [other.local(a) for a in
                                                           portable[1:]]) is None
    # A value under the study folder (key=value) is written the same way; a folder whose
    # name only starts like it is not.
    assert form.portable_text(f"data.val.ann={tmp_path / 's'}/ann.json") == \
        "data.val.ann={out}/ann.json"
    assert form.portable_text(f"{tmp_path / 's2'}/x") == f"{tmp_path / 's2'}/x"
    # What differs is named.
    changed = portable[:-1] + ["train.lr_steps=[1]"]
    assert form.difference(portable, changed) == "'train.lr_steps=[]' then, " \
                                                 "'train.lr_steps=[1]' now"
    assert form.difference(portable, portable + ["--resume", *THREAD_OVERRIDES]) is None
    assert "now also train.lr=0.1" in form.difference(portable, portable + ["train.lr=0.1"])


def test_hand_designed_row_trains_the_config_dir_genotype(tmp_path: Path) -> None:
    plan = _plan("--out", str(tmp_path), "--quick")
    argv = train_argv(plan, "genotype_short", 0)
    assert argv[argv.index("--genotype") + 1] == str(CONFIG_DIR / "synthetic" /
                                                    "genotype_short.json")
    hrnet = train_argv(plan, "hrnet_w32", 0, 0.065)
    assert hrnet[hrnet.index("--model") + 1] == "hrnet_w32"
    assert hrnet[-1] == "train.width_mult=0.065"
    assert os.path.basename(argv[0]).startswith("python")
