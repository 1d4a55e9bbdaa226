"""bench/grad_allreduce.py under torchrun (2 gloo processes): both ways of averaging a real
supernet sample's gradients run, and the table it prints has finite, positive times."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_two_process_run_prints_a_table_of_both_ways() -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "bench" / "grad_allreduce.py"),
           "--config", str(REPO / "configs" / "synthetic" / "default.yaml"),
           "--samples", "2", "--reps", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$",
                      res.stdout, re.M)
    assert len(rows) == 2, res.stdout
    for n, mib, per_tensor, bucketed, ratio in rows:
        assert int(n) > 50 and float(mib) > 0  # a supernet sample: many gradient tensors
        assert float(per_tensor) > 0 and float(bucketed) > 0 and float(ratio) > 0
    assert "backend gloo" in res.stdout
