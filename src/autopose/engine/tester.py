"""``autopose test``: score a checkpoint (or the ground-truth oracle) on the val split and
write the run folder. The pipeline itself is :mod:`autopose.evaluation.pipeline`."""

from __future__ import annotations

import time
from pathlib import Path

from autopose.config import Config, dump_config
from autopose.data.formats import dataset_format
from autopose.data.sources import resolve_data
from autopose.engine import distributed as ddp
from autopose.engine.checkpoint import load_model_for_test
from autopose.evaluation.coco_metric import format_table
from autopose.evaluation.pipeline import build_eval_set, evaluate, network_heatmaps, oracle_heatmaps
from autopose.io import check_run_folder, default_run_dir, run_record, write_json, write_text

RESULTS = "keypoint_results.json"


def run_test_command(cfg: Config, out_dir: Path | None, checkpoint: Path | None,
                     oracle: bool) -> dict[str, float]:
    """``autopose test``: predict, score, print the table, write the run folder.

    Under ``torchrun`` every process predicts a share of the boxes on its own device and
    rank 0 scores them all and writes the run folder (the same files and metrics as one
    process).
    """
    info = ddp.init_distributed()
    try:
        return _test(cfg, out_dir, checkpoint, oracle, info)
    finally:
        ddp.cleanup()


def _test(cfg: Config, out_dir: Path | None, checkpoint: Path | None, oracle: bool,
          info: ddp.DistInfo) -> dict[str, float]:
    out = Path(out_dir) if out_dir else default_run_dir("test")
    out = Path(ddp.broadcast_object(str(out)))  # one folder, named by rank 0's clock
    # Before any work (the built-in set's generation included): a folder of its own (an
    # earlier test's is refused too).
    check_run_folder(out, "test", writes=(RESULTS,))
    cfg = resolve_data(cfg)
    eval_set = build_eval_set(cfg, oracle=oracle, quiet=not info.is_main)
    if oracle:
        fn = oracle_heatmaps(eval_set.dataset.codec, eval_set.info.flip_index)
    else:
        model, device = load_model_for_test(
            checkpoint, cfg, info.device, quiet=not info.is_main,
            data_joints=(eval_set.info.num_joints, cfg.data.val.ann or "data.val.ann"))
        fn = network_heatmaps(model, device)
    t0 = time.time()
    metrics = evaluate(cfg, fn, eval_set, results_path=out / RESULTS,
                       part=(info.rank, info.world_size))
    if not info.is_main:
        return metrics
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", dump_config(cfg))
    record = run_record(cfg.seed) | {"command": "test",
                                     "mode": "oracle" if oracle else f"checkpoint {checkpoint}",
                                     "seconds": round(time.time() - t0, 2),
                                     "world_size": info.world_size}
    write_json(out / "run.json", record)
    write_json(out / "metrics.json", metrics)
    print(format_table(metrics, percent=dataset_format(eval_set.format).percent))
    print(f"metrics: {out / 'metrics.json'}")
    return metrics
