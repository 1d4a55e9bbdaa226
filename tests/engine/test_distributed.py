"""Distributed training: two gloo processes under torchrun end with the same weights."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest
import torch

from autopose.engine import distributed as d
from conftest import val_overrides
from engine_fixtures import (PYTHON, one_thread, subprocess_env, tiny_checkpoint,  # noqa: F401
                             tiny_genotype, tiny_set, write_tiny_config)

# Each rank trains through the real entry point, then saves the weights it ends with (and
# what it saw of the job), so the test can compare the ranks.
WORKER = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    import torch
    from autopose.engine.trainer import train
    from autopose.models.build import ArchSource
    cfg, genotype, out, dump = sys.argv[1:5]
    res = train(Path(cfg), [], ArchSource(genotype=Path(genotype)), Path(out), progress=False)
    rank = int(os.environ["RANK"])
    torch.save(res.model.state_dict(), Path(dump) / f"rank{rank}.pt")
    Path(dump, f"rank{rank}.json").write_text(json.dumps(
        {"final": res.final, "world": os.environ["WORLD_SIZE"], "out": str(res.out)}))
""")


def test_two_process_gloo_training_ends_with_identical_weights(tiny_set, tiny_genotype,
                                                               tmp_path):
    cfg = write_tiny_config(tmp_path / "tiny.yaml", tiny_set, epochs=2, checkpoint_every=3)
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    dump = tmp_path / "dump"
    dump.mkdir()
    out = tmp_path / "run"
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(worker), str(cfg), str(tiny_genotype), str(out), str(dump)]
    res = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]

    s0 = torch.load(dump / "rank0.pt", weights_only=True)
    s1 = torch.load(dump / "rank1.pt", weights_only=True)
    assert s0.keys() == s1.keys()
    for k in s0:  # parameters and BatchNorm statistics alike
        assert torch.equal(s0[k], s1[k]), f"{k} differs between ranks"
    r0 = json.loads((dump / "rank0.json").read_text())
    r1 = json.loads((dump / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == "2"
    assert r0["final"] == r1["final"] and "AP" in r0["final"]
    # Rank 0 wrote the one run folder; its checkpoint holds the weights both ranks ended with.
    from autopose.engine.checkpoint import read_checkpoint

    ck = read_checkpoint(out / "last.pt")
    assert ck["train_state"]["world_size"] == 2 and ck["meta"]["epoch"] == 2
    for k in s0:
        assert torch.equal(ck["model"][k], s0[k]), k
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2
    # 58 instances, 29 per rank, 4 per rank per batch: 7 batches an epoch.
    assert run["iters_per_epoch"] == 7
    # The weights moved: the ranks agree on a trained model, not on the initialisation.
    from autopose.models.build import build_model

    torch.manual_seed(0)
    init = build_model(ck["arch"]).state_dict()
    assert any(not torch.equal(init[k], s0[k]) for k in s0 if k.endswith("weight"))


def test_helpers_without_a_process_group(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    info = d.init_distributed()
    assert (info.rank, info.world_size, info.is_main, info.distributed) == (0, 1, True, False)
    assert info.device == d.default_device()
    assert d.broadcast_object({"a": 1}) == {"a": 1}
    x = torch.tensor([2.0, 4.0])
    assert torch.equal(d.all_reduce_mean(x), x)
    d.all_reduce_mean_([x])  # alone: left as it is
    assert torch.equal(x, torch.tensor([2.0, 4.0]))
    d.barrier()
    assert d.backend_for(torch.device("cpu")) == "gloo"
    assert d.backend_for(torch.device("cuda", 0)) == "nccl"


def test_cpu_share_divides_the_cores_among_the_local_processes(monkeypatch):
    monkeypatch.setattr(d.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4}, raising=False)
    cpu = torch.device("cpu")
    assert d.cpu_share(d.DistInfo(0, 1, 0, cpu)) == 5
    assert d.cpu_share(d.DistInfo(1, 4, 1, cpu, local_world_size=2)) == 2  # 5 // 2
    assert d.cpu_share(d.DistInfo(3, 8, 3, cpu, local_world_size=8)) == 1  # never 0
    # torchrun's LOCAL_WORLD_SIZE, else the world size (one machine).
    monkeypatch.setattr(d.dist, "is_initialized", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert d.init_distributed().local_world_size == 2
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert d.init_distributed().local_world_size == 4


def test_bad_environment_is_named(monkeypatch):
    from autopose.errors import UserError

    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(UserError, match="WORLD_SIZE='two'"):
        d.init_distributed()


BUCKETS = textwrap.dedent("""
    import os, sys
    import torch
    import torch.distributed as dist
    from autopose.engine import distributed as d
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    g = torch.Generator().manual_seed(rank)
    shapes = [(3, 4), (5,), (2, 2, 2), (), (7, 1)]
    tensors = [torch.randn(s, generator=g) for s in shapes]
    tensors.insert(2, torch.randn(6, generator=g, dtype=torch.float64))
    tensors[0] = tensors[0].t()  # not contiguous
    before = [t.clone() for t in tensors]
    d.all_reduce_mean_(tensors, bucket_bytes=40)  # several buckets of the float32 tensors
    torch.save({"before": before, "after": tensors}, sys.argv[1] + f"/rank{rank}.pt")
    dist.destroy_process_group()
""")


def test_bucketed_all_reduce_averages_every_tensor_in_place(tmp_path):
    """Two gloo processes: mixed dtypes, a scalar, a non-contiguous tensor, several buckets."""
    worker = tmp_path / "buckets.py"
    worker.write_text(BUCKETS)
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(worker), str(tmp_path)]
    res = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for b0, b1, a0, a1 in zip(r0["before"], r1["before"], r0["after"], r1["after"]):
        assert not torch.equal(b0, b1)
        assert a0.dtype == b0.dtype and a0.shape == b0.shape
        assert torch.allclose(a0, (b0 + b1) / 2) and torch.equal(a0, a1)


def test_two_process_test_command_scores_like_one_process(tiny_checkpoint, mmpose_coco,
                                                          tmp_path, one_thread):
    """autopose test under torchrun: each process predicts a share of the detected boxes
    (uneven shares: batches of 2), rank 0 scores them; metrics and results as one process."""
    from autopose.cli import main

    ov = val_overrides(mmpose_coco["images"], mmpose_coco["ann"],
                       **{"data.val.det_file": mmpose_coco["det"], "test.batch_size": 2})
    args = ["test", "--checkpoint", str(tiny_checkpoint)]
    assert main(args + ["--out", str(tmp_path / "one")] + ov) == 0
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "autopose"] + args + ["--out", str(tmp_path / "two")] + ov
    res = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    one, two = tmp_path / "one", tmp_path / "two"
    assert json.loads((two / "run.json").read_text())["world_size"] == 2
    assert json.loads((one / "metrics.json").read_text()) == \
        json.loads((two / "metrics.json").read_text())
    r1 = json.loads((one / "keypoint_results.json").read_text())
    r2 = json.loads((two / "keypoint_results.json").read_text())
    assert len(r1) > 2 and r1 == r2
    assert res.stdout.count("metrics: ") == 1  # one report, from rank 0
