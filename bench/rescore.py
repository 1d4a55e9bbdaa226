"""Score the architectures of a finished ``bench/ranking.py`` run on another search's
supernet, and rank them against their (already trained) stand-alone AP.

The stand-alone APs do not depend on the supernet, so one ranking's trainings serve every
supernet of the same search space: this is how the search's choices are compared on the same
instrument, e.g. ``search.weight_sampling: policy`` against ``uniform``::

    .venv/bin/python bench/ranking.py --search runs/demo/search --out runs/ranking
    .venv/bin/autopose search --out runs/search-uniform search.weight_sampling=uniform
    .venv/bin/python bench/rescore.py --ranking runs/ranking --search runs/search-uniform

It prints, and writes to ``RANKING/rescore-NAME.json`` (NAME: the search folder's name), each
architecture's reward on that supernet and Kendall tau-b of those rewards against AP with the
95 % bootstrap interval of ``ranking.py`` (same resamples, same seed), next to the tau of the
ranking's own rewards.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ranking import BOOTSTRAP, rank_statistics

from autopose.config import load_config
from autopose.errors import UserError
from autopose.io import read_json, run_record, write_json


def rescore(ranking: Path, run: Path) -> dict:
    import torch

    from autopose.search.bilevel import BilevelSearch
    from autopose.search.checkpoint import load_search_checkpoint
    from autopose.search_space.genotype import Genotype

    rec = read_json(ranking / "ranking.json", "ranking record")
    rows = [a for a in rec["archs"] if a.get("AP") is not None]
    if len(rows) < 3:
        raise UserError(f"{ranking / 'ranking.json'}: archs: fewer than 3 trained architectures")
    ckpt = load_search_checkpoint(run)
    if ckpt is None:
        raise UserError(f"{run / 'checkpoint.pt'}: not found (the search's final weights)")
    search = BilevelSearch(load_config(run / "config.yaml"), ranking / f"supernet-{run.name}",
                           strategy=ckpt.get("strategy", "autopose"), progress=False)
    search.supernet.load_state_dict(ckpt["supernet"])
    torch.set_num_threads(max(1, search.cfg.search.reward_threads or 1))
    rewards = []
    for a in rows:
        # ranking.py writes each architecture's genotype beside its stages: read it from this
        # folder, whatever path the record was written under.
        genotype = Genotype.load(ranking / a["name"] / "genotype.json")
        rewards.append(search.evaluate_genotype(genotype))
        print(f"rescore: {a['name']} {a['scale_vectors']}: reward {rewards[-1]:.4f} "
              f"(ranking's {a['reward']:.4f}), AP {a['AP']:.3f}", flush=True)
    ap = [a["AP"] for a in rows]
    stats = rank_statistics({"rescored": rewards, "ranking": [a["reward"] for a in rows]}, ap,
                            BOOTSTRAP, 0)
    return {"search": str(run), "ranking": str(ranking), "rewards": rewards, "ap": ap,
            "names": [a["name"] for a in rows], "stats": stats} | run_record(0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranking", type=Path, required=True, help="a finished ranking.py --out")
    p.add_argument("--search", type=Path, required=True, help="another search's run folder")
    args = p.parse_args(argv)
    try:
        out = rescore(args.ranking, args.search)
    except UserError as e:
        print(f"rescore: error: {e}", file=sys.stderr)
        return 2
    write_json(args.ranking / f"rescore-{args.search.name}.json", out)
    for name, r in out["stats"]["rankers"].items():
        print(f"rescore: {name} rewards: Kendall tau {r['tau']:+.3f}, 95 % CI {r['ci95']}")
    d = next(iter(out["stats"]["differences"].values()))
    print(f"rescore: difference (rescored - ranking's): {d['delta_tau']:+.3f}, 95 % CI {d['ci95']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
