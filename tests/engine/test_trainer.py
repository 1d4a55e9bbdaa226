"""Training: the loss, the data order, the run folder, divergence, and resume after SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from autopose.cli import main
from autopose.engine.checkpoint import read_checkpoint
from autopose.engine.loss import joints_mse_loss
from autopose.engine.trainer import ResumableSampler, TrainingDiverged, train
from autopose.errors import UserError
from autopose.models.build import ArchSource
from engine_fixtures import (PYTHON, one_thread, subprocess_env, tiny_genotype,  # noqa: F401
                             tiny_set, write_tiny_config)


def test_joints_mse_loss_is_hrnets():
    g = torch.Generator().manual_seed(0)
    out, tgt = torch.rand(3, 5, 8, 6, generator=g), torch.rand(3, 5, 8, 6, generator=g)
    w = torch.tensor([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.float32)
    # HRNet: per joint 0.5 * MSE(pred * w, gt * w) over (N, h*w), averaged over joints.
    per_joint = [0.5 * torch.mean((out[:, j].reshape(3, -1) * w[:, j:j + 1]
                                   - tgt[:, j].reshape(3, -1) * w[:, j:j + 1]) ** 2)
                 for j in range(5)]
    assert torch.allclose(joints_mse_loss(out, tgt, w), torch.stack(per_joint).mean())
    assert joints_mse_loss(out, out, w) == 0
    # A joint with weight 0 does not count, whatever its error.
    out2 = out.clone()
    out2[0, 1] += 100
    assert torch.equal(joints_mse_loss(out2, tgt, w), joints_mse_loss(out, tgt, w))


def test_data_order_is_a_function_of_seed_and_epoch_and_resumes_part_way():
    data = list(range(50))
    a = ResumableSampler(data, 1, 0, seed=3)
    b = ResumableSampler(data, 1, 0, seed=3)
    a.set_position(4, 0)
    b.set_position(4, 0)
    full = list(a)
    assert full == list(b) and sorted(full) == data
    b.set_position(5, 0)
    assert list(b) != full  # another epoch, another order
    b.set_position(4, 16)
    assert list(b) == full[16:] and len(b) == 34
    # Two ranks split the same permutation.
    r0, r1 = ResumableSampler(data, 2, 0, 3), ResumableSampler(data, 2, 1, 3)
    r0.set_position(4, 0)
    r1.set_position(4, 0)
    assert sorted(list(r0) + list(r1)) == data


def _strip_times(log: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in ("seconds", "val_seconds")} for e in log]


def _same_weights(a: Path, b: Path) -> None:
    sa, sb = read_checkpoint(a)["model"], read_checkpoint(b)["model"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{a.name}: {k} differs"


def _train_cmd(cfg: Path, genotype: Path, out: Path, *extra: str) -> list[str]:
    return [PYTHON, "-m", "autopose", "train", "--config", str(cfg), "--genotype",
            str(genotype), "--out", str(out), *extra]


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tiny_set, tiny_genotype, tmp_path):
    # 7 batches an epoch, 2 epochs, a checkpoint after every batch.
    cfg = write_tiny_config(tmp_path / "tiny.yaml", tiny_set, epochs=2, checkpoint_every=1)
    env = subprocess_env()
    ref = tmp_path / "uninterrupted"
    subprocess.run(_train_cmd(cfg, tiny_genotype, ref), env=env, check=True,
                   capture_output=True, timeout=300)

    run = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(cfg, tiny_genotype, run), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if (run / "last.pt").is_file():
                ts = read_checkpoint(run / "last.pt")["train_state"]
                if ts["epoch"] == 0 and ts["iteration"] >= 1:
                    break
            time.sleep(0.01)
        assert proc.poll() is None, "training ended before a mid-epoch checkpoint was seen"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    ts = read_checkpoint(run / "last.pt")["train_state"]
    assert ts["epoch"] == 0 and 1 <= ts["iteration"] < 7, "not killed mid-epoch"
    assert not (run / "metrics.json").exists()

    res = subprocess.run(_train_cmd(cfg, tiny_genotype, run, "--resume"), env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"from epoch 0 batch {ts['iteration']}" in res.stderr

    _same_weights(ref / "last.pt", run / "last.pt")
    _same_weights(ref / "best.pt", run / "best.pt")
    m_ref = json.loads((ref / "metrics.json").read_text())
    m_run = json.loads((run / "metrics.json").read_text())
    assert m_ref == m_run and m_ref["epochs"] == 2
    log_ref = [json.loads(x) for x in (ref / "log.jsonl").read_text().splitlines()]
    log_run = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert _strip_times(log_ref) == _strip_times(log_run) and len(log_ref) == 2
    assert json.loads((run / "run.json").read_text())["resumes"][0]["from_iteration"] == \
        ts["iteration"]


def test_run_folder_has_every_record(tiny_set, tiny_genotype, tmp_path, one_thread):
    cfg = write_tiny_config(tmp_path / "tiny.yaml", tiny_set, epochs=2, val_every=2)
    res = train(cfg, ["train.lr=0.003"], ArchSource(genotype=tiny_genotype), tmp_path / "run",
                progress=False)
    out = tmp_path / "run"
    for name in ("config.yaml", "run.json", "genotype.json", "last.pt", "best.pt", "log.jsonl",
                 "metrics.json", "training.png", "val_results.json"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import cv2

    plot = cv2.imread(str(out / "training.png"))
    assert plot is not None and plot.shape[1] > plot.shape[0] and plot.std() > 10
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    assert "val" not in log[0] and "AP" in log[1]["val"]  # validation every 2 epochs
    assert log[0]["lr"] == pytest.approx(0.003) and log[1]["lr"] == pytest.approx(0.0003)
    assert all(np.isfinite(e["loss"]) and e["loss"] > 0 for e in log)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final"] == log[1]["val"] == res.final
    assert metrics["best"]["epoch"] == 2 and metrics["best"]["metric"] == "AP"
    from autopose.config import load_config

    saved = load_config(out / "config.yaml")
    assert saved.train.lr == 0.003 and saved.data.input_size == [64, 48]
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 0 and "versions" in run and run["world_size"] == 1


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_set, tiny_genotype, tmp_path,
                                                       monkeypatch, one_thread):
    import autopose.engine.trainer as trainer

    calls = {"n": 0}
    real = trainer.joints_mse_loss

    def poisoned(out, tgt, w):
        calls["n"] += 1
        loss = real(out, tgt, w)
        return loss * float("nan") if calls["n"] == 10 else loss  # epoch 2, batch 3

    monkeypatch.setattr(trainer, "joints_mse_loss", poisoned)
    cfg = write_tiny_config(tmp_path / "tiny.yaml", tiny_set, epochs=3, checkpoint_every=2)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as e:
        train(cfg, [], ArchSource(genotype=tiny_genotype), out, progress=False)
    msg = str(e.value)
    assert "diverged" in msg and "nan" in msg and "epoch 2, batch 3" in msg
    assert "after epoch 1, batch 2 of epoch 2" in msg and str(out / "last.pt") in msg
    ts = read_checkpoint(out / "last.pt")["train_state"]
    assert (ts["epoch"], ts["iteration"]) == (1, 2)  # nothing saved after the bad step
    weights = read_checkpoint(out / "last.pt")["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_bad_train_settings_are_named(tiny_set, tiny_genotype, tmp_path, capsys):
    cfg = write_tiny_config(tmp_path / "tiny.yaml", tiny_set, epochs=1)
    base = ["train", "--config", str(cfg), "--out", str(tmp_path / "r")]
    cases = [(["--genotype", str(tiny_genotype), "train.optimizer=rmsprop"], "train.optimizer"),
             (["--genotype", str(tiny_genotype), "train.batch_size=1000"], "train.batch_size"),
             (["--genotype", str(tiny_genotype), "train.amp=fp8"], "train.amp"),
             ([], "--genotype"),
             (["--genotype", str(tmp_path / "none.json")], "none.json"),
             (["--resume", "--genotype", str(tiny_genotype)], "last.pt")]
    for extra, needle in cases:
        assert main(base + extra) == 2, extra
        errors = [ln for ln in capsys.readouterr().err.splitlines()
                  if ln.startswith("autopose: error:")]
        assert len(errors) == 1 and needle in errors[0], (extra, errors)


def test_resume_checks_the_command_line(tiny_set, tiny_genotype, tmp_path, one_thread):
    cfg = write_tiny_config(tmp_path / "tiny.yaml", tiny_set, epochs=1)
    out = tmp_path / "run"
    train(cfg, [], ArchSource(genotype=tiny_genotype), out, progress=False)
    with pytest.raises(UserError, match="already holds a training run"):
        train(cfg, [], ArchSource(genotype=tiny_genotype), out, progress=False)
    with pytest.raises(UserError, match=r"config\.train\.lr: differs"):
        train(cfg, ["train.lr=0.5"], ArchSource(genotype=tiny_genotype), out, resume=True,
              progress=False)
    with pytest.raises(UserError, match="arch: differs"):
        train(cfg, [], ArchSource(model="hrnet_w32"), out, resume=True, progress=False)
    # The same command line with --resume on a finished run: nothing left to do.
    res = train(cfg, [], ArchSource(genotype=tiny_genotype), out, resume=True, progress=False)
    assert res.final == json.loads((out / "metrics.json").read_text())["final"]
