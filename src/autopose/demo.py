"""The main job on the built-in data: search, train what was found, test it.

``make demo`` runs this on a fresh machine: the synthetic set is generated on first use,
the bi-level search writes a genotype, the derived network is trained with the short
schedule, and the test path scores its checkpoint; every step's run folder is under
``--out``.
"""

from __future__ import annotations

from pathlib import Path

from autopose.config import CONFIG_DIR, DEFAULT_CONFIG, load_config
from autopose.engine.tester import run_test_command
from autopose.engine.train_files import LAST
from autopose.engine.trainer import train
from autopose.io import restart_unfinished
from autopose.models.build import ArchSource
from autopose.search.checkpoint import CHECKPOINT
from autopose.search.run import run_search_command


def run_demo(out_dir: Path) -> int:
    """Search, train and test under ``out_dir`` (each step resumes a run it finds there)."""
    out = Path(out_dir)
    print("autopose demo 1/3: search on the built-in synthetic set")
    # Each step resumes its own run, or starts again where a killed step left no checkpoint.
    genotype = run_search_command(load_config(DEFAULT_CONFIG), out / "search",
                                  resume=restart_unfinished(out / "search", CHECKPOINT, "demo"))
    print("autopose demo 2/3: train the derived network (short schedule)")
    short = CONFIG_DIR / "synthetic" / "train_short.yaml"
    train(short, [], ArchSource(genotype=genotype), out / "train",
          resume=restart_unfinished(out / "train", LAST, "demo"))
    print("autopose demo 3/3: test the trained network")
    checkpoint = out / "train" / "best.pt"
    if (out / "test" / "metrics.json").is_file():
        # A test run is never written over (io.check_run_folder): a finished demo's stands.
        print(f"autopose demo: {out / 'test'} holds the test of this checkpoint already")
    else:
        restart_unfinished(out / "test", None, "demo")
        run_test_command(load_config(short), out / "test", checkpoint, oracle=False)
    print("\nautopose demo finished:")
    print(f"  genotype     {genotype}")
    print(f"  search plots {out / 'search'}/search_progress.png, search_entropy.png, network.png")
    print(f"  checkpoint   {checkpoint}")
    print(f"  train plot   {out / 'train'}/training.png")
    print(f"  metrics      {out / 'test' / 'metrics.json'}")
    return 0
