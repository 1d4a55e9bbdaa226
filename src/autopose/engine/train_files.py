"""The files of a training run folder, besides its checkpoints::

    config.yaml  run.json  genotype.json (derived networks)
    last.pt      resumable: weights, optimizer, scheduler, RNG states, position, log
    best.pt      the weights of the best validation so far (no training state)
    log.jsonl    one line per epoch: loss, lr, seconds, validation metrics
    metrics.json final and best validation metrics
    training.png loss and AP curves        tb/   TensorBoard events
    val_results.json  COCO-format predictions of the last validation

Only rank 0 writes them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from autopose.config import Config, dump_config
from autopose.io import run_record, write_json, write_text
from autopose.viz.training import plot_training

LAST = "last.pt"
BEST = "best.pt"


def write_run_files(out: Path, cfg: Config, facts: dict[str, Any], resumed: bool,
                    position: tuple[int, int], genotype: dict[str, Any] | None) -> None:
    """config.yaml, run.json (the run record, ``facts``, and every resume so far: from
    ``position``, ``(epoch, batch)``, for this one) and genotype.json (derived networks)."""
    # (A killed run's temporary files were removed by io.check_run_folder.)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", dump_config(cfg))
    record = run_record(cfg.seed) | {"command": "train"} | facts
    runs = []
    if resumed and (out / "run.json").is_file():
        try:
            prev = json.loads((out / "run.json").read_text())
            runs = prev.get("resumes", [])
        except (OSError, ValueError):
            runs = []
        runs.append({"from_epoch": position[0], "from_iteration": position[1],
                     "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
    record["resumes"] = runs
    write_json(out / "run.json", record)
    if genotype is not None:
        write_json(out / "genotype.json", genotype)


def write_log(out: Path, log: list[dict[str, Any]], metric: str, title: str) -> None:
    """log.jsonl (one line per epoch) and training.png (loss and ``metric`` curves)."""
    write_text(out / "log.jsonl", "".join(json.dumps(e) + "\n" for e in log))
    plot_training(log, out / "training.png", metric, title=title)


def open_writer(out: Path, global_step: int) -> Any:
    """A TensorBoard writer on ``out/tb``."""
    # Lazy: tensorboard is slow to import and only the writing rank needs it.
    from torch.utils.tensorboard import SummaryWriter

    # purge_step hides events a killed run wrote after its last checkpoint.
    return SummaryWriter(str(out / "tb"), purge_step=global_step or None)
