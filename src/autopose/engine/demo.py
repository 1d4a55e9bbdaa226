"""The main job on the built-in data: what ``make demo`` runs.

Today it runs what exists end to end: the synthetic set (generated on first use) and the
full test path with the ground-truth oracle. Search, training and test of the derived
network join it as they land (issues 5 to 7).
"""

from __future__ import annotations

from pathlib import Path

from autopose.config import DEFAULT_CONFIG, load_config
from autopose.engine.tester import run_test_command


def run_demo(out_dir: Path) -> int:
    cfg = load_config(DEFAULT_CONFIG)
    print("autopose demo: oracle test on the built-in synthetic set "
          "(search and training are not built yet)")
    run_test_command(cfg, out_dir=Path(out_dir) / "oracle_test", checkpoint=None, oracle=True)
    return 0
