"""Plots of a search from its log (paper Fig. 6): rewards and AP, losses, entropies."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from autopose.io import atomic_write  # noqa: E402


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
    return path


def plot_search(log: list[dict[str, Any]], out: Path, reward_name: str = "OKS AP",
                num_ops: int | None = None) -> dict[str, Path]:
    """``search_progress.png`` (rewards, that of the most likely architecture, losses against
    an all-zero heatmap's, the end of the warm-up) and ``search_entropy.png`` (cell-level
    alpha entropies against uniform, network-level policy entropy)."""
    epochs = [e["epoch"] + 1 for e in log]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    rew = [(e["epoch"] + 1, sum(e["rewards"]) / len(e["rewards"])) for e in log if e["rewards"]]
    if rew:
        ax1.plot(*zip(*rew), "o-", label="mean reward of sampled architectures")
    ml = [(e["epoch"] + 1, e["most_likely_reward"]) for e in log
          if e.get("most_likely_reward") is not None]
    if ml:
        ax1.plot(*zip(*ml), "s-", label="reward of most likely")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel(f"reward: {reward_name} (search-validation)")
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(fontsize=8)
    else:  # a search with no evaluation yet (warming up)
        ax1.text(0.5, 0.5, "warming up: no reward yet", ha="center", transform=ax1.transAxes)
    ax1.grid(alpha=0.3)
    ax2.plot(epochs, [e["weight_loss"] for e in log], label="weight loss")
    if any(e.get("zero_heatmap_loss") is not None for e in log):
        ax2.plot(epochs, [e.get("zero_heatmap_loss") for e in log], "k:",
                 label="loss of an all-zero heatmap")
    start = next((e["controller_start"] for e in reversed(log)
                  if e.get("controller_start") is not None), None)
    for ax in (ax1, ax2):
        if start is not None:
            ax.axvline(start + 1, color="grey", lw=0.8, ls="--")
    if start is not None:
        ax2.annotate("warm-up ends", (start + 1, ax2.get_ylim()[1]), fontsize=7,
                     ha="right", va="top", rotation=90)
    if any(e.get("alpha_loss") is not None for e in log):
        ax2.plot(epochs, [e["alpha_loss"] for e in log], label="alpha loss")
    ax2.set_yscale("log")
    ax2.set_xlabel("epoch")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    paths = {"progress": _save(fig, out / "search_progress.png")}

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(epochs, [e["alpha_entropy_individual"] for e in log], label="alpha, individual cells")
    if any(e.get("alpha_entropy_aggregation") is not None for e in log):
        ax.plot(epochs, [e["alpha_entropy_aggregation"] for e in log],
                label="alpha, aggregation cells")
    ax2 = ax.twinx()
    ax2.plot(epochs, [e["policy_entropy"] for e in log], "k--", label="controller policy")
    if num_ops:
        ax.axhline(math.log(num_ops), color="grey", lw=0.8, ls=":",
                   label=f"uniform over {num_ops} ops")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean edge entropy (nats)")
    ax2.set_ylabel("policy entropy (nats)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths["entropy"] = _save(fig, out / "search_entropy.png")
    return paths
