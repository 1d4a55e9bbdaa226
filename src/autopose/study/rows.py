"""The study's rows (the paper's tables 4 and 5, plus hand-designed references of the same
search space), how many seeds each gets, and the tiny settings of ``--quick``.

A row says what its search changes (or that it has none) and what is trained: the search's
derived network, a fixed genotype file, or a baseline whose width is matched to the FLOPs of
the ``autopose`` row's networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autopose.config import CONFIG_DIR


@dataclass(frozen=True)
class Row:
    """One row of the table."""

    label: str
    # --strategy of the row's search; None when the row is not searched.
    strategy: str | None = "autopose"
    # What the row changes in the search, after the user's overrides so that the row's
    # definition wins.
    search_overrides: tuple[str, ...] = ()
    # The search runs at --small-input instead of the search config's input size.
    small_search_input: bool = False
    # A fixed genotype trained instead of a search's (a hand design of the same space).
    genotype: Path | None = None
    # A baseline network trained instead, its width matched to REFERENCE_ROW's FLOPs.
    baseline: str | None = None

    @property
    def searched(self) -> bool:
        return self.strategy is not None


ROW_SPECS: dict[str, Row] = {
    "autopose": Row("autopose (cells by gradient, branches by the controller)"),
    "random": Row("random search, same budget", strategy="random"),
    "single_branch": Row("single branch per stage",
                         search_overrides=("search.single_branch=true",)),
    "concat": Row("concat aggregation (no aggregation cell)",
                  search_overrides=("model.aggregation=concat",)),
    "all_branches": Row("all branches fixed (cells searched)",
                        search_overrides=("search.branches=all",)),
    "small_input": Row("searched at a smaller input, trained at the training input",
                       small_search_input=True),
    "genotype_short": Row("hand-designed genotype_short.json (no search)", strategy=None,
                          genotype=CONFIG_DIR / "synthetic" / "genotype_short.json"),
    "hrnet_w32": Row("HRNet-W32, width matched to the autopose row's FLOPs", strategy=None,
                     baseline="hrnet_w32"),
}
ROWS: tuple[str, ...] = tuple(ROW_SPECS)
# The row whose derived networks set the FLOPs the width-reduced HRNet is matched to.
REFERENCE_ROW = "autopose"
BASELINE_ROW = "hrnet_w32"

# Seeds per row, 0..N-1. The protocol: more seeds where the headline difference is
# measured (autopose against random). --quick: every stage is a process of 2-5 s, mostly
# start-up (torch, and torch._dynamo, which torch.optim imports on first use), so the quick
# study is sized by their count: one seed per row, 22 processes, about 90 s on one core
# (a second autopose seed alone added 12 s), within CI's 3 minutes on its slower cores.
PROTOCOL_SEEDS = {"autopose": 8, "random": 8}
PROTOCOL_SEEDS_OTHER = 5
QUICK_SEEDS = 1


def seed_count(row: str, quick: bool, seeds: int | None) -> int:
    """How many seeds ``row`` gets: ``--seeds N`` for every row, else the protocol's (or
    the quick study's) count."""
    if seeds is not None:
        return seeds
    if quick:
        return QUICK_SEEDS
    return PROTOCOL_SEEDS.get(row, PROTOCOL_SEEDS_OTHER)


DEFAULT_SEARCH_CONFIG = CONFIG_DIR / "synthetic" / "default.yaml"
DEFAULT_TRAIN_CONFIG = CONFIG_DIR / "synthetic" / "train_short.yaml"
DEFAULT_SMALL_INPUT = (96, 72)  # 3/4 of the built-in 128x96 in each dimension
QUICK_SMALL_INPUT = (48, 36)  # 3/4 of the quick training input, as 96x72 is of 128x96

# --quick: tiny settings on the same code path. The data overrides go to every stage so that
# search, training and test share one generated set (the cache key is these settings).
QUICK_DATA = ["data.synthetic.num_train=24", "data.synthetic.num_val=8",
              "data.synthetic.image_size=[160,120]", "data.workers=0"]
QUICK_SEARCH = ["search.epochs=1", "search.iters_per_epoch=2", "search.batch_size=4",
                "search.controller.start_epoch=0", "search.controller.updates_per_epoch=1",
                "search.controller.archs_per_update=2",
                "search.derive_samples=1", "search.input_size=[64,48]",
                "search.checkpoint_every=0", "search.reward_fraction=0.1",
                # One core: a second reward thread would only contend with the first.
                "search.reward_threads=1",
                # A small supernet (narrow, one module per stage): a search in about 5 s
                # instead of 9 s, its checkpoint 15 MB instead of 190 MB.
                "model.branch_channels=[4,8,12,16]", "model.stem_channels=8",
                "model.modules_per_stage=1"]
QUICK_TRAIN = ["data.input_size=[64,48]", "train.epochs=1", "train.batch_size=4",
               "train.lr_steps=[]"]


def row_search_overrides(row: str, small_input: tuple[int, int]) -> list[str]:
    """What ``row`` changes in its search (``small_input``: ``--small-input``)."""
    spec = ROW_SPECS[row]
    h, w = small_input
    return list(spec.search_overrides) + (
        [f"search.input_size=[{h},{w}]"] if spec.small_search_input else [])
