"""``bench/ranking.py``: Kendall tau of a search's rewards against trained AP.

A tiny search runs in this process; the quick ranking (4 architectures: rewards in its own
process, 4 trainings of 8 tiny epochs and 4 tests as separate processes, two at a time) runs
for real, then again (a pure resume), then once more after one training's markers are
removed as if it had been killed (that training alone is resumed from its last.pt).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from scipy.stats import kendalltau

from autopose.cli import main as autopose_main
from autopose.config import load_config
from autopose.data.synthetic import generate
from autopose.models.derived import build_derived
from autopose.models.flops import count_macs, count_params
from autopose.search.architectures import uniform_scale_vectors
from autopose.search.bilevel import BilevelSearch
from autopose.search.checkpoint import load_search_checkpoint
from autopose.search_space.genotype import Genotype
from process_helpers import processes_naming


REPO = Path(__file__).resolve().parents[1]
RANKING = REPO / "bench" / "ranking.py"
ARCHS = 4
STAGE_MARKERS = ("train.json", "test.json", "result.json")


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_ranking", RANKING)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


ranking = _module()


def _data_sets(root: Path) -> list[str]:
    return [f"data.train.images={root / 'images' / 'train'}",
            f"data.train.ann={root / 'person_keypoints_train.json'}",
            f"data.val.images={root / 'images' / 'val'}",
            f"data.val.ann={root / 'person_keypoints_val.json'}"]


def _search_overrides(root: Path) -> list[str]:
    """tests/search/test_search.py's tiny search."""
    return _data_sets(root) + [
        "data.workers=0", "data.input_size=[64,48]", "model.branch_channels=[4,8,8,8]",
        "model.stem_channels=8", "search.input_size=[64,48]", "search.epochs=2",
        "search.iters_per_epoch=2", "search.batch_size=4", "search.reward_fraction=0.2",
        "search.derive_samples=2", "search.controller.start_epoch=1",
        "search.controller.updates_per_epoch=2", "search.checkpoint_every=0",
        "test.batch_size=8", "search.reward_threads=1"]


def _args(run: Path, out: Path, root: Path) -> list[str]:
    return ["--search", str(run), "--out", str(out), "--quick", "--archs", str(ARCHS),
            "--jobs", "2", "--set", *_data_sets(root)]


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(RANKING), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _markers(out: Path) -> dict[str, int]:
    found = {str(p.relative_to(out)): p.stat().st_mtime_ns
             for name in STAGE_MARKERS for p in out.glob(f"arch_*/{name}")}
    found["rewards.json"] = (out / "rewards.json").stat().st_mtime_ns
    return found


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("ranking")
    root = base / "set"
    # The easy level: 8 tiny epochs leave the architectures at different, non-zero APs.
    generate(root, num_train=40, num_val=8, seed=0, image_size=(320, 240), level="easy")
    run = base / "search"
    assert autopose_main(["search", "--out", str(run)] + _search_overrides(root)) == 0
    search_files = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    out = base / "rank"
    first = _run(*_args(run, out, root))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    before = _markers(out)
    ranking_json = json.loads((out / "ranking.json").read_text())
    start = time.monotonic()
    second = _run(*_args(run, out, root))
    second_s = time.monotonic() - start
    after_second = _markers(out)
    # As if the run had been killed while arch_01 trained, after its last.pt was written.
    cell = out / "arch_01"
    for name in STAGE_MARKERS:
        (cell / name).unlink()
    shutil.rmtree(cell / "test")
    third = _run(*_args(run, out, root))
    return {"root": root, "run": run, "out": out, "first": first, "second": second,
            "third": third, "before": before, "after_second": after_second,
            "second_s": second_s, "ranking": ranking_json, "search_files": search_files}


def test_architectures_are_the_derived_one_then_distinct_uniform_samples(quick):
    rows = quick["ranking"]["archs"]
    assert [r["index"] for r in rows] == list(range(ARCHS))
    assert [r["derived"] for r in rows] == [True] + [False] * (ARCHS - 1)
    derived = Genotype.load(quick["run"] / "genotype.json")
    assert rows[0]["scale_vectors"] == derived.scale_vectors
    # arch_00's genotype is the search's derived genotype itself (same cells, same vectors).
    assert Genotype.load(quick["out"] / "arch_00" / "genotype.json").to_dict() == \
        derived.to_dict()
    # The others: the first distinct draws of a generator seeded with --seed (0).
    gen = torch.Generator().manual_seed(0)
    expected = [derived.scale_vectors]
    while len(expected) < ARCHS:
        sv = uniform_scale_vectors(3, 4, False, gen).int().tolist()
        if sv not in expected:
            expected.append(sv)
    assert [r["scale_vectors"] for r in rows] == expected
    for r in rows[1:]:  # the searched cells, other scale vectors
        g = Genotype.load(quick["out"] / r["name"] / "genotype.json")
        assert g.scale_vectors == r["scale_vectors"]
        assert g.individual == derived.individual and g.aggregation == derived.aggregation
    # Nothing was written into the search run.
    assert {p.name: p.stat().st_mtime_ns for p in quick["run"].iterdir()} == \
        quick["search_files"]


def test_rewards_are_those_of_the_search(quick, tmp_path):
    run = quick["run"]
    search = BilevelSearch(load_config(run / "config.yaml"), tmp_path / "s", progress=False)
    search.load_state_dict(load_search_checkpoint(run), run / "checkpoint.pt")
    rows = quick["ranking"]["archs"]
    rewards = [search.evaluate(search.current(torch.tensor(r["scale_vectors"],
                                                            dtype=torch.bool)))
               for r in rows]
    assert [r["reward"] for r in rows] == pytest.approx(rewards, rel=1e-6, abs=1e-9)
    assert len(set(rewards)) > 1  # architectures that differ are rewarded differently
    # The derived architecture's reward is the one the search's derivation recorded.
    table = json.loads((run / "derivation.json").read_text())["candidates"]
    recorded = [c["reward"] for c in table if c["scale_vectors"] == rows[0]["scale_vectors"]]
    assert rows[0]["reward"] == pytest.approx(recorded[0], rel=1e-6, abs=1e-9)


def test_rescore_on_the_rankings_own_search_reproduces_its_rewards(quick):
    """bench/rescore.py reads ranking.json and each arch_XX/genotype.json: scored on the
    supernet that made the ranking, every reward is the ranking's own."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(RANKING.parent / "rescore.py"), "--ranking",
                           str(quick["out"]), "--search", str(quick["run"])], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = json.loads((quick["out"] / f"rescore-{quick['run'].name}.json").read_text())
    rows = [a for a in quick["ranking"]["archs"] if a.get("AP") is not None]
    assert out["names"] == [a["name"] for a in rows]
    assert out["rewards"] == pytest.approx([a["reward"] for a in rows], rel=1e-6, abs=1e-9)
    assert out["ap"] == [a["AP"] for a in rows]


def test_each_architecture_is_trained_tested_and_measured(quick):
    out, rows = quick["out"], quick["ranking"]["archs"]
    for r in rows:
        metrics = json.loads((out / r["name"] / "test" / "metrics.json").read_text())
        assert r["AP"] == metrics["AP"] and 0.0 <= r["AP"] <= 1.0
        # Parameters and GFLOPs of the trained network: training width (1) and input.
        net = build_derived(Genotype.load(out / r["name"] / "genotype.json"), width_mult=1.0)
        assert r["params"] == count_params(net)
        assert r["gflops"] == pytest.approx(count_macs(net, (64, 48)) / 1e9, rel=1e-9)
        assert r["input_size"] == [64, 48] and r["width_mult"] == 1.0
        assert r["cpu_s"]["train"] > 0 and r["cpu_s"]["test"] > 0 and r["cpu_s"]["reward"] > 0
        train_cfg = yaml.safe_load((out / r["name"] / "train" / "config.yaml").read_text())
        assert train_cfg["seed"] == 0 and train_cfg["train"]["epochs"] == 8
        assert train_cfg["data"]["train"]["ann"].startswith(str(quick["root"]))
    assert len({r["AP"] for r in rows}) > 1, "every AP equal: the quick training is too short"
    assert len({r["params"] for r in rows}) == ARCHS


def test_taus_and_intervals(quick):
    rank = quick["ranking"]
    rows, stats = rank["archs"], rank["statistics"]
    ap = [r["AP"] for r in rows]
    for key in ("reward", "params", "gflops"):
        s = stats["rankers"][key]
        expected = kendalltau([r[key] for r in rows], ap).statistic
        assert s["tau"] == pytest.approx(expected, abs=1e-12), key
        assert -1.0 <= s["tau"] <= 1.0
        lo, hi = s["ci95"]
        assert -1.0 <= lo <= hi <= 1.0, s
        assert 0 < s["bootstrap_valid"] <= 2000 and -1.0 <= s["spearman_rho"] <= 1.0
    d = stats["differences"]["reward-params"]
    assert d["delta_tau"] == pytest.approx(stats["rankers"]["reward"]["tau"]
                                           - stats["rankers"]["params"]["tau"])
    assert -2.0 <= d["ci95"][0] <= d["ci95"][1] <= 2.0


def test_records_and_reports(quick):
    out, rank = quick["out"], quick["ranking"]
    assert rank["search"] == str(quick["run"]) and rank["search_seed"] == 0
    assert rank["search_strategy"] == "autopose" and rank["derived_genotype_reproduced"]
    assert rank["search_config_changes"] == []  # read by the code that searched
    assert rank["git_commit"] and rank["date"] and rank["versions"]["torch"]
    assert rank["machine"]["cpu_count"] == os.cpu_count()
    commands = rank["commands"]
    assert sorted((c["arch"], c["stage"]) for c in commands) == sorted(
        (f"arch_{i:02d}", stage) for i in range(ARCHS) for stage in ("train", "test"))
    for c in commands:
        assert f" -m autopose {c['stage']} " in c["command"] and "seed=0" in c["command"]
        if c["stage"] == "train":
            assert f"--genotype {out / c['arch'] / 'genotype.json'}" in c["command"]
    table = (out / "ranking.md").read_text()
    body = [ln for ln in table.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert len(body) == ARCHS and "(derived)" in body[0]
    assert "Kendall tau" in table and "tau(reward) - tau(params)" in table
    with open(out / "ranking.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "| reward (shared weights) |" in quick["first"].stdout  # the printed summary


def test_a_rerun_runs_nothing_and_a_killed_training_is_resumed(quick):
    second, third = quick["second"], quick["third"]
    assert second.returncode == 0, second.stderr[-3000:]
    assert "ranking: 0 stages run" in second.stdout and " ..." not in second.stdout
    assert quick["after_second"] == quick["before"]
    assert quick["second_s"] < 30
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "arch_01: train (resumed) ..." in third.stdout
    assert "arch_01: test ..." in third.stdout
    assert "rewarding" not in third.stdout and "arch_00: train" not in third.stdout
    now = _markers(quick["out"])
    for name, mtime in quick["before"].items():
        assert (now[name] == mtime) == (not name.startswith("arch_01/")), name
    rec = json.loads((quick["out"] / "arch_01" / "train.json").read_text())
    assert rec["resumed"] is True and rec["argv"][-1] == "--resume"
    rank = json.loads((quick["out"] / "ranking.json").read_text())
    assert [r["AP"] for r in rank["archs"]] == [r["AP"] for r in quick["ranking"]["archs"]]


def test_sigterm_kills_the_running_trainings(quick, tmp_path):
    # Another --out with the same rewards (copied): the run goes straight to training.
    out = tmp_path / "rank"
    out.mkdir()
    shutil.copy(quick["out"] / "rewards.json", out / "rewards.json")
    for i in range(ARCHS):
        (out / f"arch_{i:02d}").mkdir()
        shutil.copy(quick["out"] / f"arch_{i:02d}" / "genotype.json",
                    out / f"arch_{i:02d}" / "genotype.json")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # Trainings far longer than the test: a train.json after the signal means the run let a
    # stage finish instead of killing it. (CI once saw one: the two threads' "train ..."
    # lines had run together into one, so this loop waited for a third stage.)
    proc = subprocess.Popen([sys.executable, str(RANKING),
                             *_args(quick["run"], out, quick["root"]), "train.epochs=400"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    started = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        started += line.rstrip().endswith(": train ...")
        if started == 2:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Promptly, not once a stage ends by itself.
    assert time.monotonic() - sent < 30
    assert proc.returncode == 130, err
    assert "interrupted; run the same command again to resume" in err
    # No training of this --out is left running.
    assert processes_naming(out) == []
    assert not list(out.glob("arch_*/train.json"))


def test_bad_input_is_one_line_and_exit_2(quick, tmp_path, capsys):
    def call(*args: str) -> int:
        try:
            return ranking.main(["bench/ranking.py", *args])
        except SystemExit as e:  # argparse
            return int(e.code)

    no_ckpt = tmp_path / "run"
    no_ckpt.mkdir()
    for name in ("config.yaml", "genotype.json"):
        shutil.copy(quick["run"] / name, no_ckpt / name)
    out = tmp_path / "out"
    assert call("--search", str(no_ckpt), "--out", str(out), "--quick") == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt: not found" in err and len(err.strip().splitlines()) == 1
    assert call("--search", str(tmp_path / "nope"), "--out", str(out)) == 2
    assert "no such folder" in capsys.readouterr().err
    assert call("--search", str(quick["run"]), "--out", str(out), "--archs", "4") == 2
    assert "--archs: at least 16" in capsys.readouterr().err
    assert call("--search", str(quick["run"]), "--out", str(out), "--quick",
                "--set", "train.no_such_key=1") == 2
    assert "unknown key" in capsys.readouterr().err
    assert not out.exists()  # nothing ran
    # Another search's rewards in the same --out are refused.
    other = tmp_path / "other"
    shutil.copytree(quick["out"], other, ignore=shutil.ignore_patterns("arch_*"))
    rec = json.loads((other / "rewards.json").read_text())
    rec["made_from"]["seed"] = 7
    (other / "rewards.json").write_text(json.dumps(rec))
    assert call(*_args(quick["run"], other, quick["root"])) == 2
    assert "made from another search run or seed" in capsys.readouterr().err


# ---------------------------------------------------------------------------- statistics


def test_statistics_on_known_orders():
    ap = [0.1, 0.4, 0.2, 0.3, 0.5, 0.05]
    stats = ranking.rank_statistics({"reward": ap, "params": [-a for a in ap],
                                     "gflops": [1.0] * len(ap)}, ap, 500, 0)
    r, p, g = (stats["rankers"][k] for k in ("reward", "params", "gflops"))
    assert r["tau"] == pytest.approx(1.0) and r["ci95"] == pytest.approx([1.0, 1.0])
    assert p["tau"] == pytest.approx(-1.0) and p["ci95"] == pytest.approx([-1.0, -1.0])
    assert r["spearman_rho"] == pytest.approx(1.0)
    assert g["tau"] is None and g["ci95"] is None and g["bootstrap_valid"] == 0
    # Resamples drawing one architecture only leave tau undefined: skipped, not counted.
    assert 0 < r["bootstrap_valid"] <= 500
    d = stats["differences"]["reward-params"]
    assert d["delta_tau"] == pytest.approx(2.0) and d["share_above_0"] == 1.0
    assert stats["differences"]["reward-gflops"]["delta_tau"] is None


def test_statistics_on_noisy_data_are_seeded_and_cover_the_estimate():
    rng = np.random.default_rng(1)
    ap = rng.random(16)
    rankers = {"reward": list(ap + 0.3 * rng.standard_normal(16)),
               "params": list(rng.random(16)), "gflops": list(rng.random(16))}
    a = ranking.rank_statistics(rankers, list(ap), 2000, 0)
    assert a == ranking.rank_statistics(rankers, list(ap), 2000, 0)  # seeded
    assert a != ranking.rank_statistics(rankers, list(ap), 2000, 1)
    for key, values in rankers.items():
        s = a["rankers"][key]
        assert s["tau"] == pytest.approx(kendalltau(values, ap).statistic, abs=1e-12)
        lo, hi = s["ci95"]
        assert lo < s["tau"] < hi and 0.1 < hi - lo < 1.2, s
        assert s["bootstrap_valid"] == 2000
    assert a["rankers"]["reward"]["tau"] > 0.4  # the informative ranker is found


def test_bootstrap_tau_is_scipys_tau_b_on_each_resample():
    rng = np.random.default_rng(2)
    x = np.round(rng.random(12), 1)  # ties, and more ties in the resamples
    y = np.round(x + 0.3 * rng.standard_normal(12), 1)
    idx = rng.integers(0, 12, size=(300, 12))
    idx[0] = 3  # one architecture drawn 12 times: undefined
    got = ranking.bootstrap_kendall(x, y, idx)
    assert np.isnan(got[0])
    for row, tau in zip(idx[1:], got[1:]):
        expected = kendalltau(x[row], y[row]).statistic
        if np.isnan(expected):
            assert np.isnan(tau)
        else:
            assert tau == pytest.approx(expected, abs=1e-12)


def test_sampling_refuses_more_architectures_than_the_space_holds():
    with pytest.raises(ranking.UserError, match="the search space has 8"):
        ranking.sample_scale_vectors([[1], [0], [1]], 9, 3, 1, False, 0)
    svs = ranking.sample_scale_vectors([[1], [0], [1]], 8, 3, 1, False, 0)
    assert len({str(s) for s in svs}) == 8 and svs[0] == [[1], [0], [1]]


def test_config_changes_are_named_by_key():
    saved = "search:\n  epochs: 2\n  input_size: [64, 48]\nseed: 0\n"
    assert ranking._config_changes(saved, saved) == []
    now = "search:\n  epochs: 3\n  input_size: [64, 48]\n  threads: 0\nseed: 0\n"
    assert ranking._config_changes(saved, now) == ["search.epochs: 2 -> 3",
                                                   "added search.threads=0"]
    assert ranking._config_changes(saved, "seed: 0\n") == [
        "removed search.epochs", "removed search.input_size"]
