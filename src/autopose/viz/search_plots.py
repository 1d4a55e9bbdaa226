"""Plots of a search from its log (paper Fig. 6): rewards and AP, losses, entropies."""

from __future__ import annotations

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


def plot_search(log: list[dict[str, Any]], out: Path,
                reward_name: str = "OKS AP") -> dict[str, Path]:
    """``search_progress.png`` (rewards, that of the most likely architecture, losses) and
    ``search_entropy.png`` (cell-level alpha entropies and network-level policy entropy)."""
    epochs = [e["epoch"] + 1 for e in log]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    rew = [(e["epoch"] + 1, sum(e["rewards"]) / len(e["rewards"])) for e in log if e["rewards"]]
    if rew:
        ax1.plot(*zip(*rew), "o-", label="mean reward of sampled architectures")
    ax1.plot(epochs, [e["most_likely_reward"] for e in log], "s-", label="reward of most likely")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel(f"reward: {reward_name} (search-validation)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.plot(epochs, [e["weight_loss"] for e in log], label="weight loss")
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
