"""bench/infer_speed.py on a small input: both backends run the same network, agree within
export's tolerance, and the table has finite frames per second and a ratio for it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_short_run_prints_both_backends_side_by_side() -> None:
    cmd = [sys.executable, str(REPO / "bench" / "infer_speed.py"), "--nets", "short",
           "--size", "64x48", "--reps", "2", "--warmup", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "(<= 0.0001: yes)" in res.stdout, res.stdout
    rows = re.findall(r"^\| short \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \| "
                      r"(met|MISSED) \|$", res.stdout, re.M)
    assert len(rows) == 1, res.stdout
    gmac, torch_fps, ort_fps, ratio, _ = rows[0]
    assert float(gmac) > 0 and float(torch_fps) > 0 and float(ort_fps) > 0
    assert abs(float(ratio) - float(ort_fps) / float(torch_fps)) < 0.02
