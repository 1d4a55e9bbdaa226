"""The training curves of a run: loss per epoch and validation AP (or PCKh) per validation.

Drawn with matplotlib's Agg backend (no display needed) into one PNG, written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autopose.io import atomic_write


def plot_training(log: list[dict[str, Any]], path: str | Path, metric: str = "AP",
                  title: str | None = None) -> Path:
    """Draw ``log`` (one entry per epoch: ``epoch``, ``loss``, ``lr``, optional ``val``
    metrics) into ``path``: left, the training loss (log scale); right, ``metric`` at each
    validation, the best one marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e["epoch"] for e in log]
    losses = [e["loss"] for e in log]
    val = [(e["epoch"], e["val"][metric]) for e in log if e.get("val") and metric in e["val"]]

    fig, (ax_l, ax_m) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    ax_l.plot(epochs, losses, marker="o", ms=3, color="tab:blue")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("training loss (0.5 x weighted MSE)")
    if losses and min(losses) > 0:
        ax_l.set_yscale("log")
    ax_l.grid(alpha=0.3)
    # Where the learning rate drops, a dashed line, so steps in the loss can be read.
    for prev, cur in zip(log, log[1:]):
        if cur.get("lr") is not None and prev.get("lr") is not None and cur["lr"] < prev["lr"]:
            ax_l.axvline(prev["epoch"] + 0.5, color="grey", ls="--", lw=0.8)

    scale = 100.0 if metric in ("AP", "AR") or metric.startswith(("AP ", "AR ")) else 1.0
    if val:
        xs, ys = zip(*val)
        ys = [y * scale for y in ys]
        ax_m.plot(xs, ys, marker="o", ms=4, color="tab:orange", label=metric)
        best = max(range(len(ys)), key=lambda i: ys[i])
        ax_m.scatter([xs[best]], [ys[best]], s=80, facecolors="none", edgecolors="tab:red",
                     label=f"best {ys[best]:.1f} (epoch {xs[best]})")
        # COCO's AP at OKS 0.5 moves first in short runs; draw it too, dashed.
        loose = [(e["epoch"], e["val"]["AP .5"] * scale) for e in log
                 if e.get("val") and "AP .5" in e["val"]]
        if metric == "AP" and loose:
            lx, ly = zip(*loose)
            ax_m.plot(lx, ly, ls="--", marker=".", color="tab:green", label="AP .5")
        ax_m.legend(loc="best")
    else:
        ax_m.text(0.5, 0.5, "no validation yet", ha="center", va="center",
                  transform=ax_m.transAxes, color="grey")
    ax_m.set_xlabel("epoch")
    ax_m.set_ylabel(f"validation {metric}" + (" (%)" if scale == 100.0 else ""))
    ax_m.grid(alpha=0.3)
    if epochs:
        ax_m.set_xlim(0.5, max(epochs) + 0.5)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_l, ax_m):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    fig.suptitle(title or "training")
    fig.tight_layout()

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png")

    try:
        return atomic_write(path, write)
    finally:
        plt.close(fig)
