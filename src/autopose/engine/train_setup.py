"""Before a training run starts: its settings checked, and its run folder (new, or the one
``--resume`` continues) with the config, arch and checkpoint it continues from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autopose.config import Config, DEFAULT_CONFIG, load_config, to_dict
from autopose.data.sources import resolve_data
from autopose.engine.checkpoint import checkpoint_config, read_checkpoint
from autopose.engine.resume import first_difference
from autopose.engine.train_files import LAST
from autopose.errors import UserError
from autopose.io import check_run_folder, default_run_dir
from autopose.models.build import ArchSource, resolve_arch


def check_train_config(cfg: Config, world_size: int) -> None:
    """Reject train settings that cannot run with ``world_size`` processes. The choices
    and ranges of every field are checked when the config is loaded (config.py)."""
    t = cfg.train
    if t.batch_size % world_size:
        raise UserError(f"config: train.batch_size: {t.batch_size} is not divisible by the "
                        f"{world_size} processes (it is the total over all of them)")


def prepare(config: Path | None, overrides: list[str], source: ArchSource, out: Path | None,
            resume: bool) -> tuple[Config, dict[str, Any] | ArchSource, Path,
                                   dict[str, Any] | None]:
    """Config, arch, run folder and (for --resume) the checkpoint to continue from."""
    if resume and out is None:
        raise UserError("autopose train --resume: give --out, the run folder to continue")
    out = out or default_run_dir("train")
    # A run folder belongs to its run: --resume needs a training run's last.pt there, a new
    # run a folder that holds no run (io.RUN_FILES; a search's genotype.json among them).
    check_run_folder(out, "train", resume)
    if resume:
        path = out / LAST
        ckpt = read_checkpoint(path)
        if not ckpt.get("train_state"):
            raise UserError(f"{path}: train_state: missing; the file cannot be resumed")
        cfg = checkpoint_config(ckpt, path)
        arch = ckpt["arch"]
        # The same command line again, plus --resume, is the usual way to resume: accept it
        # when it describes the same run, and say what differs when it does not.
        if config is not None or overrides:
            asked = resolve_data(load_config(config or DEFAULT_CONFIG, overrides))
            diff = first_difference(to_dict(asked), to_dict(cfg))
            if diff is not None:
                raise UserError(f"{path}: config.{diff}: differs from the command line's; "
                                "--resume continues the run with its own config (drop "
                                "--config and the overrides)")
        if source.genotype is not None or source.model is not None:
            asked_arch = resolve_arch(source, cfg, arch["num_joints"])
            if asked_arch != arch:
                raise UserError(f"{path}: arch: differs from the --genotype/--model given")
        return cfg, arch, out, ckpt
    cfg = resolve_data(load_config(config or DEFAULT_CONFIG, overrides))
    source.check()
    return cfg, source, out, None
