"""``autopose search`` end to end on a tiny generated set: artifacts, strategies, ablations,
resume after SIGKILL, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from autopose.cli import main
from autopose.data.synthetic import generate
from autopose.search_space.genotype import Genotype


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "set"
    generate(root, num_train=40, num_val=4, seed=0, image_size=(320, 240))
    return root


def tiny(tiny_set: Path, **extra: object) -> list[str]:
    ov = {
        "data.train.images": tiny_set / "images" / "train",
        "data.train.ann": tiny_set / "person_keypoints_train.json",
        "data.val.images": tiny_set / "images" / "val",
        "data.val.ann": tiny_set / "person_keypoints_val.json",
        "data.workers": 0, "data.input_size": "[64,48]",
        "model.branch_channels": "[4,8,8,8]", "model.stem_channels": 8,
        "search.input_size": "[64,48]", "search.epochs": 2, "search.iters_per_epoch": 2,
        "search.batch_size": 4, "search.reward_fraction": 0.2, "search.derive_samples": 2,
        "search.controller.start_epoch": 1, "search.controller.updates_per_epoch": 2,
        "search.controller.archs_per_update": 2,
        "search.checkpoint_every": 0, "test.batch_size": 8,
        # One thread, as every test has (conftest): the built-in 2 reward threads beside the
        # other xdist worker made these searches 10x slower in the suite.
        "search.reward_threads": 1,
    }
    ov.update(extra)
    return [f"{k}={v}" for k, v in ov.items()]


def run_search(out: Path, overrides: list[str], strategy: str = "autopose") -> Genotype:
    assert main(["search", "--out", str(out), "--strategy", strategy] + overrides) == 0
    return Genotype.load(out / "genotype.json")


@pytest.mark.parametrize("reward_batch, per_pass", [(0, 8), (5, 5)])
def test_reward_batch_size_sets_the_reward_passes(tiny_set, tmp_path, reward_batch, per_pass):
    """search.reward_batch_size (0: test.batch_size) is the persons per reward pass; the
    reward's BatchNorm uses each pass's statistics, so the value changes the rewards."""
    from autopose.config import load_config
    from autopose.search.bilevel import BilevelSearch

    cfg = load_config(None, tiny(tiny_set, **{"search.reward_batch_size": reward_batch}))
    search = BilevelSearch(cfg, tmp_path / "run", progress=False)
    n = len(search.reward.eval_set.dataset)
    assert n > 8
    assert [len(b["image"]) for b in search.reward.batches] == \
        [min(per_pass, n - i) for i in range(0, n, per_pass)]
    assert cfg.test.batch_size == 8  # the test's own batches are untouched


def test_search_writes_every_artifact(tiny_set, tmp_path):
    g = run_search(tmp_path / "run", tiny(tiny_set))
    out = tmp_path / "run"
    for name in ("config.yaml", "run.json", "search_log.jsonl", "derivation.json",
                 "search_progress.png", "search_entropy.png", "network.png",
                 "individual_cell.png", "aggregation_cell.png"):
        assert (out / name).stat().st_size > 0, name
    assert any((out / "tb").iterdir())
    log = [json.loads(x) for x in (out / "search_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [0, 1]
    assert log[0]["controller_updates"] == 0 and log[1]["controller_updates"] == 2
    assert len(log[1]["rewards"]) == 4 and log[1]["baseline"] is not None
    # The warm-up ended at the latest allowed period (half of 2) and says so.
    assert [e["controller_start"] for e in log] == [None, 1]
    assert all(e["loss_ratio"] > 0 and e["zero_heatmap_loss"] > 0 for e in log)
    assert log[0]["argmax_agreement"] is None and 0 <= log[1]["argmax_agreement"] <= 1
    assert log[0]["most_likely_reward"] is None and log[1]["most_likely_reward"] is not None
    assert all(len(e["sampled_architectures"]) == 2 for e in log)
    assert log[1]["tau"] < log[0]["tau"]
    # The end of the period (rewards and updates) is timed apart, and is part of the period.
    assert log[0]["reward_seconds"] < 1.0 and 0 < log[1]["reward_seconds"] <= log[1]["seconds"]
    assert len(g.scale_vectors) == 3 and g.aggregation is not None
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 0 and "versions" in run


@pytest.mark.parametrize("strategy,extra,check", [
    ("random", {}, lambda g: True),
    ("autopose", {"search.single_branch": True},
     lambda g: all(sum(v) <= 1 for v in g.scale_vectors)),
    ("autopose", {"model.aggregation": "concat"}, lambda g: g.aggregation is None),
    ("autopose", {"search.branches": "all"},
     lambda g: all(all(v) for v in g.scale_vectors)),
    ("autopose", {"search.input_size": "[32,32]"}, lambda g: True),
    ("autopose", {"search.reward": "oks"}, lambda g: True),
    ("autopose", {"search.channels_last": True}, lambda g: True),
])
def test_strategies_and_ablations(tiny_set, tmp_path, strategy, extra, check):
    g = run_search(tmp_path / "run", tiny(tiny_set, **extra), strategy)
    assert check(g)
    log = [json.loads(x) for x in (tmp_path / "run" / "search_log.jsonl").read_text().splitlines()]
    if extra.get("search.reward") == "oks":  # dense: positive even for an untrained supernet
        assert all(0 < r < 1 for r in log[-1]["rewards"])
    for name in ("search_log.jsonl", "search_progress.png", "search_entropy.png", "network.png"):
        assert (tmp_path / "run" / name).is_file()


@pytest.mark.parametrize("sampling", ["policy", "uniform"])
def test_weight_sampling_policy_or_uniform(tiny_set, tmp_path, sampling, monkeypatch):
    """Once the controller learns (from the period that ended the warm-up on), the weight
    steps' scale vectors come from it ("policy", ENAS) or stay uniform ("uniform"); before it,
    uniform either way."""
    from autopose.config import load_config
    from autopose.search.bilevel import BilevelSearch

    cfg = load_config(None, tiny(tiny_set, **{"search.weight_sampling": sampling}))
    search = BilevelSearch(cfg, tmp_path / "run", progress=False)
    asked = []
    real = search.controller.sample
    monkeypatch.setattr(search.controller, "sample", lambda gen: asked.append(1) or real(gen))
    search.sample_scale_vectors(1)  # still warming up: uniform either way
    assert asked == []
    search.state.controller_start = 1  # the warm-up ended at the end of period 1
    search.sample_scale_vectors(0)
    assert asked == []
    v = search.sample_scale_vectors(1)
    assert v.shape == (3, 4) and ((v == 0) | (v == 1)).all()
    assert asked == ([1] if sampling == "policy" else [])


def test_channels_last_search_computes_the_same_step(tiny_set, tmp_path):
    """search.channels_last changes the memory layout only: the same loss and gradients of
    a search step, and the same reward, up to float rounding. (Later steps drift apart:
    Adam moves a weight by about lr whatever the sign of a gradient that is only rounding.)"""
    from autopose.config import load_config
    from autopose.search.bilevel import BilevelSearch

    runs = {}
    for cl in (False, True):
        cfg = load_config(None, tiny(tiny_set, **{"search.channels_last": cl}))
        search = BilevelSearch(cfg, tmp_path / f"cl{cl}", progress=False)
        reward = search.evaluate(search.most_likely())
        w, _ = search._loaders(0, 0)
        loss, _ = search._step(next(w), search.sample_scale_vectors(0).int().tolist(), 5.0,
                               search.w_opt)
        grads = {n: p.grad.clone() for n, p in search.supernet.named_parameters()
                 if p.grad is not None}
        conv = next(m for m in search.supernet.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == cl
        runs[cl] = (loss, grads, reward)
    (l0, g0, r0), (l1, g1, r1) = runs[False], runs[True]
    assert l1 == pytest.approx(l0, rel=1e-4) and r1 == pytest.approx(r0, abs=1e-4)
    assert g0.keys() == g1.keys() and len(g0) > 20
    # As one vector: some gradients are zero in exact arithmetic (a BatchNorm bias followed
    # by BatchNorm) and pure rounding here, so per-tensor relative errors mean nothing.
    # Stacked BatchNorms over 4 images and 4-8 channels amplify float32 rounding (either
    # layout's gradients were about 3 % from a float64 run of the same step with PyTorch's
    # default head init). A layout bug would be of order 100 %.
    v0 = torch.cat([g0[n].flatten() for n in g0])
    v1 = torch.cat([g1[n].flatten() for n in g0])
    # With HRNet's head init (std 1e-3) the gradient reaching the body is 1e-3 as large, and
    # BatchNorm's backward (a difference of near-equal terms over 4 images) leaves a larger
    # relative rounding error in it: 7.5 % measured, 0.4 % with PyTorch's default head init.
    assert float((v1 - v0).norm() / v0.norm()) < 0.15


def test_unknown_weight_sampling_is_named(tiny_set, tmp_path, capsys):
    assert main(["search", "--out", str(tmp_path / "r")]
                + tiny(tiny_set, **{"search.weight_sampling": "fair"})) == 2
    assert "search.weight_sampling: expected one of policy, uniform, got 'fair'" in _error_line(capsys)


def _cli(out: Path, overrides: list[str], resume: bool = False) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "autopose", "search", "--out", str(out)]
    return subprocess.Popen(cmd + (["--resume"] if resume else []) + overrides, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_resume_after_sigkill_gives_the_same_genotype(tiny_set, tmp_path):
    ov = tiny(tiny_set, **{"search.iters_per_epoch": 4, "search.checkpoint_every": 1})
    full = _cli(tmp_path / "full", ov)
    killed = _cli(tmp_path / "killed", ov)
    state = tmp_path / "killed" / "search_state.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if state.exists():
            pos = json.loads(state.read_text())
            if pos["epoch"] == 1 and pos["iteration"] >= 1:  # mid-epoch, controller active
                break
        time.sleep(0.05)
    else:
        pytest.fail("no mid-epoch checkpoint appeared")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "genotype.json").exists()
    resumed = _cli(tmp_path / "killed", ov, resume=True)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert full.wait(timeout=300) == 0, full.stderr.read()
    a = json.loads((tmp_path / "full" / "genotype.json").read_text())
    b = json.loads((tmp_path / "killed" / "genotype.json").read_text())
    assert a == b
    la = (tmp_path / "full" / "search_log.jsonl").read_text().splitlines()
    lb = (tmp_path / "killed" / "search_log.jsonl").read_text().splitlines()
    strip = lambda line: {k: v for k, v in json.loads(line).items()  # noqa: E731
                          if k not in ("seconds", "reward_seconds")}
    assert [strip(x) for x in la] == [strip(x) for x in lb]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("autopose: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_damaged_checkpoint_missing_data_and_wrong_key(tiny_set, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    assert main(["search", "--out", str(out), "--resume"] + tiny(tiny_set)) == 2
    line = _error_line(capsys)
    assert "checkpoint.pt" in line and "damaged" in line
    assert main(["search", "--out", str(out)] + tiny(tiny_set)) == 2
    assert "--resume" in _error_line(capsys)
    missing = tiny(tiny_set, **{"data.train.ann": tmp_path / "nope.json"})
    assert main(["search", "--out", str(tmp_path / "r2")] + missing) == 2
    assert "nope.json" in _error_line(capsys)
    assert main(["search", "--out", str(tmp_path / "r3"), "search.epochz=3"]) == 2
    assert "search.epochz: unknown key" in _error_line(capsys)


def test_resume_with_another_process_count_is_refused(tiny_set, tmp_path, capsys):
    out = tmp_path / "run"
    ov = tiny(tiny_set, **{"search.epochs": 1})
    assert main(["search", "--out", str(out)] + ov) == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["world_size"] == 1
    ckpt["world_size"] = 2  # as if written under torchrun --nproc_per_node=2
    torch.save(ckpt, out / "checkpoint.pt")
    capsys.readouterr()
    assert main(["search", "--out", str(out), "--resume"] + ov) == 2
    line = _error_line(capsys)
    assert "checkpoint.pt" in line and "written by 2 process(es), this run has 1" in line


def test_two_process_gloo_search_agrees(tiny_set, tmp_path):
    """torchrun with 2 CPU processes: gradients averaged over gloo, one genotype."""
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "autopose", "search", "--out", str(out)] + \
        tiny(tiny_set, **{"search.batch_size": 2})
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all 2 processes derived the same genotype" in proc.stdout
    Genotype.load(out / "genotype.json")
    assert json.loads((out / "run.json").read_text())["world_size"] == 2


def test_reward_threads_are_capped_at_the_process_share(tiny_set, tmp_path, monkeypatch):
    from autopose.config import load_config
    from autopose.engine import distributed as ddp
    from autopose.search.bilevel import BilevelSearch

    cfg = load_config(None, tiny(tiny_set, **{"search.reward_threads": 64}))
    search = BilevelSearch(cfg, tmp_path / "run", progress=False)
    share = ddp.cpu_share(search.dist)
    assert share < 64 and search.reward_threads == share
    seen = []
    real = search.reward
    monkeypatch.setattr(search, "reward", lambda net: seen.append(torch.get_num_threads())
                        or real(net))
    before = torch.get_num_threads()
    search.evaluate(search.strategy.most_likely())
    assert seen == [share] and torch.get_num_threads() == before
    # Below the share, the setting is kept; 0 still means search.threads.
    for asked in (1, 0):
        cfg = load_config(None, tiny(tiny_set, **{"search.reward_threads": asked}))
        assert BilevelSearch(cfg, tmp_path / f"r{asked}", progress=False).reward_threads == asked


def test_warm_up_ends_on_the_loss_criterion_or_at_the_latest(tiny_set, tmp_path):
    from autopose.config import load_config
    from autopose.search.bilevel import BilevelSearch

    cfg = load_config(None, tiny(tiny_set, **{"search.epochs": 10,
                                              "search.controller.start_epoch": 2}))
    search = BilevelSearch(cfg, tmp_path / "run", progress=False)
    assert not search.warm_up_over(1, 0.5)  # before controller.start_epoch
    assert not search.warm_up_over(2, 0.95)  # not yet better than 0.9 x an all-zero heatmap
    assert search.warm_up_over(2, 0.85)
    assert not search.warm_up_over(3, 1.2)
    assert search.warm_up_over(4, 1.2)  # at the latest after half of the 10 periods


def test_random_search_rescores_its_pool_on_the_final_weights(tiny_set, tmp_path):
    """Random search's pool was scored on supernets of different ages: derive() scores every
    pool candidate again before it picks."""
    from autopose.config import load_config
    from autopose.search.bilevel import BilevelSearch
    from autopose.search.candidates import candidate_to_dict as _cand_to_dict

    cfg = load_config(None, tiny(tiny_set, **{"search.derive_samples": 0}))
    search = BilevelSearch(cfg, tmp_path / "run", strategy="random", progress=False)
    stale = []
    for i in range(3):
        cand = search._random_candidate()
        cand.reward = 100.0 + i  # a stale reward no real one can reach
        stale.append(cand)
        search.state.pool.append(_cand_to_dict(cand))
    scored = []
    real = search.reward
    search.reward = lambda net: scored.append(1) or real(net)
    genotype, table = search.derive()
    assert len(scored) >= len({str(c.scale_vectors.tolist()) for c in stale})
    assert all(row["reward"] < 100 for row in table)
