"""``autopose search``: the run folder around a :class:`BilevelSearch`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from autopose.config import Config, SearchConfig, dump_config
from autopose.engine import distributed as ddp
from autopose.errors import UserError
from autopose.io import check_run_folder, default_run_dir, run_record, write_json, write_text
from autopose.search.bilevel import BilevelSearch
from autopose.search.checkpoint import load_search_checkpoint
from autopose.viz.architecture import draw_genotype
from autopose.viz.search_plots import plot_search


def _write_log(out: Path, log: list[dict]) -> None:
    write_text(out / "search_log.jsonl", "".join(json.dumps(e) + "\n" for e in log))


def _write_scalars(writer, entry: dict[str, Any]) -> None:
    """A period's log entry on the TensorBoard ``writer``."""
    epoch = entry["epoch"]
    for k in ("weight_loss", "loss_ratio", "alpha_loss", "policy_entropy",
              "most_likely_reward", "alpha_entropy_individual",
              "alpha_entropy_aggregation", "argmax_agreement", "baseline"):
        if entry.get(k) is not None:
            writer.add_scalar(f"epoch/{k}", entry[k], epoch)
    if entry["rewards"]:
        writer.add_scalar("epoch/mean_reward", sum(entry["rewards"]) / len(entry["rewards"]),
                          epoch)


def _epoch_line(entry: dict[str, Any], s: SearchConfig) -> str:
    """The line a period's end prints."""
    reward = entry["most_likely_reward"]
    return (f"epoch {entry['epoch'] + 1}/{s.epochs}: loss {entry['weight_loss']:.2e} "
            f"({entry['loss_ratio']:.2f} of an all-zero heatmap's), "
            + (f"reward ({s.reward}) of most likely {reward:.3f}, " if reward is not None
               else "warming up, ")
            + f"alpha entropy {entry['alpha_entropy_individual']:.3f}"
            + (f"/{entry['alpha_entropy_aggregation']:.3f}"
               if entry["alpha_entropy_aggregation"] is not None else "")
            + f", policy entropy {entry['policy_entropy']:.2f}, controller updates "
            f"{entry['controller_updates']}, {entry['seconds']:.0f} s")


def run_search_command(cfg: Config, out_dir: Path | None, strategy: str = "autopose",
                       resume: bool = False, seed: int | None = None,
                       progress: bool = True) -> Path:
    """Search, derive and write the run folder; returns the genotype's path."""
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    info = ddp.init_distributed()
    try:
        if resume and out_dir is None:
            raise UserError("autopose search --resume: give --out, the run folder to continue")
        # One run folder for all ranks: rank 0's clock names it.
        out = ddp.broadcast_object(Path(out_dir) if out_dir else default_run_dir("search"))
        # --resume needs a search's checkpoint.pt there; a new search a folder holding no run.
        check_run_folder(out, "search", resume)
        # Read (and checked to be a search's) before the data and the supernet are built.
        state = load_search_checkpoint(out) if resume else None
        return _search(cfg, out, strategy, state, progress, info)
    finally:
        ddp.cleanup()


def _search(cfg: Config, out: Path, strategy: str, state: dict[str, Any] | None,
            progress: bool, info: ddp.DistInfo) -> Path:
    # Lazy: tensorboard is slow to import, and only the writing rank needs it.
    from torch.utils.tensorboard import SummaryWriter

    main = info.is_main
    out.mkdir(parents=True, exist_ok=True)
    search = BilevelSearch(cfg, out, strategy, dist_info=info, progress=progress)
    if state is not None:
        search.resume(state)
        if main:
            print(f"resuming {out} at epoch {search.state.epoch + 1}, "
                  f"iteration {search.state.iteration}")
    if main:
        write_text(out / "config.yaml", dump_config(search.cfg))
        write_json(out / "run.json", run_record(search.cfg.seed)
                   | {"command": "search", "strategy": strategy,
                      "world_size": info.world_size,
                      "reward_threads": search.reward_threads})
    s = search.cfg.search
    say = print if main else (lambda *a, **k: None)
    say(f"search ({strategy}): {s.epochs} epochs x {search.iters_per_epoch} iterations, "
          f"{len(search.weight_set)} / {len(search.arch_set)} persons in the weight / arch "
          f"halves, reward on {len(search.reward.eval_set.dataset)} persons, "
          f"device {search.device}, {info.world_size} process(es)")
    if search.reward_threads != s.reward_threads:
        say(f"search.reward_threads={s.reward_threads} capped at {search.reward_threads}: "
            f"this process's share of the CPU cores")
    writer = SummaryWriter(str(out / "tb")) if main else None

    def on_epoch(entry: dict[str, Any]) -> None:
        if not main:
            return
        _write_log(out, search.state.log)
        _write_scalars(writer, entry)
        print(_epoch_line(entry, s))

    try:
        genotype, table = search.run(writer, on_epoch)
    finally:
        if writer is not None:
            writer.close()
    path = out / "genotype.json"
    if info.distributed:
        every = [None] * info.world_size
        torch.distributed.all_gather_object(every, genotype.to_dict())
        if any(g != every[0] for g in every):
            raise RuntimeError("ranks derived different genotypes; this is a bug")
        say(f"all {info.world_size} processes derived the same genotype")
    if not main:
        return path
    genotype.save(path)
    write_json(out / "derivation.json", {"candidates": table})
    plot_search(search.state.log, out, "OKS AP" if s.reward == "ap" else "mean OKS",
                num_ops=len(search.cfg.model.ops))
    hw = tuple(s.input_size or search.cfg.data.input_size)
    draw_genotype(genotype, out, input_hw=hw)
    best = max(c["reward"] for c in table)
    print(f"genotype: {path} (search-validation {s.reward} {best:.3f}; scale vectors "
          f"{genotype.scale_vectors})")
    print(f"plots: {out / 'search_progress.png'}, {out / 'search_entropy.png'}, "
          f"{out / 'network.png'}")
    return path
