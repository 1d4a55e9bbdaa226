"""``autopose search``: the run folder around a :class:`BilevelSearch`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from autopose.config import Config, dump_config
from autopose.errors import UserError
from autopose.io import run_record, write_json, write_text
from autopose.search.bilevel import BilevelSearch
from autopose.search.checkpoint import CHECKPOINT


def _write_log(out: Path, log: list[dict]) -> None:
    write_text(out / "search_log.jsonl", "".join(json.dumps(e) + "\n" for e in log))


def run_search_command(cfg: Config, out_dir: Path | None, strategy: str = "autopose",
                       resume: bool = False, seed: int | None = None,
                       progress: bool = True) -> Path:
    """Search, derive and write the run folder; returns the genotype's path."""
    from torch.utils.tensorboard import SummaryWriter

    from autopose.engine.tester import default_run_dir
    from autopose.viz.architecture import draw_genotype
    from autopose.viz.search_plots import plot_search

    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    out = Path(out_dir) if out_dir else default_run_dir("search")
    if (out / CHECKPOINT).exists() and not resume:
        raise UserError(f"{out}: holds a search already: add --resume to continue it, or give "
                        "another --out")
    out.mkdir(parents=True, exist_ok=True)
    search = BilevelSearch(cfg, out, strategy, progress=progress)
    if resume and search.resume():
        print(f"resuming {out} at epoch {search.state.epoch + 1}, "
              f"iteration {search.state.iteration}")
    write_text(out / "config.yaml", dump_config(search.cfg))
    write_json(out / "run.json", run_record(search.cfg.seed) | {"strategy": strategy})
    s = search.cfg.search
    print(f"search ({strategy}): {s.epochs} epochs x {search.iters_per_epoch} iterations, "
          f"{len(search.weight_set)} / {len(search.arch_set)} persons in the weight / arch "
          f"halves, reward on {len(search.reward.eval_set.dataset)} persons, "
          f"device {search.device}")
    writer = SummaryWriter(str(out / "tb"))
    try:
        for epoch in range(search.state.epoch, s.epochs):
            entry = search.run_epoch(epoch, writer)
            search.state.log.append(entry)
            search.state.epoch, search.state.iteration = epoch + 1, 0
            _write_log(out, search.state.log)
            for k in ("weight_loss", "alpha_loss", "policy_entropy", "most_likely_ap",
                      "alpha_entropy_individual", "alpha_entropy_aggregation", "baseline"):
                if entry.get(k) is not None:
                    writer.add_scalar(f"epoch/{k}", entry[k], epoch)
            if entry["rewards"]:
                writer.add_scalar("epoch/mean_reward", sum(entry["rewards"]) / len(entry["rewards"]),
                                  epoch)
            search.checkpoint()
            print(f"epoch {epoch + 1}/{s.epochs}: loss {entry['weight_loss']:.2e}, "
                  f"AP of most likely {entry['most_likely_ap']:.3f}, policy entropy "
                  f"{entry['policy_entropy']:.2f}, controller updates "
                  f"{entry['controller_updates']}, {entry['seconds']:.0f} s")
    finally:
        writer.close()
    genotype, table = search.derive()
    path = genotype.save(out / "genotype.json")
    write_json(out / "derivation.json", {"candidates": table})
    plot_search(search.state.log, out)
    hw = tuple(s.input_size or search.cfg.data.input_size)
    draw_genotype(genotype, out, input_hw=hw)
    best = max(c["ap"] for c in table)
    print(f"genotype: {path} (search-validation AP {best:.3f}; scale vectors "
          f"{genotype.scale_vectors})")
    print(f"plots: {out / 'search_progress.png'}, {out / 'search_entropy.png'}, "
          f"{out / 'network.png'}")
    return path
