"""Drawings of a genotype: the network-level architecture (like paper Fig. 4) and cell DAGs.

All drawings use matplotlib's ``Figure`` directly with the Agg renderer (no pyplot, no display,
no global state) and are written as PNG through :func:`autopose.io.atomic_write`.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from autopose.io import atomic_write
from autopose.models.derived import scaled_widths
from autopose.search_space.genotype import CellGenotype, Genotype

_STAGE_COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]
_OP_COLOURS = {"conv_1x1": "#1f77b4", "conv_3x3": "#ff7f0e", "conv_5x5": "#d62728",
               "avg_pool_3x3": "#2ca02c", "max_pool_3x3": "#9467bd", "skip": "#7f7f7f",
               "sep_conv_3x3": "#8c564b", "dil_conv_3x3": "#e377c2"}


def _save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=dpi,
                                                    facecolor="white", bbox_inches="tight"))


def draw_network(genotype: Genotype, path: str | Path, input_hw: tuple[int, int] = (256, 192),
                 width_mult: float | None = None) -> Path:
    """Network-level drawing: one column per multi-scale module, one row per branch.

    Active branches are coloured boxes (individual cells + aggregation cell), inactive ones a
    dashed skip line; lines between boxes of a column show the cross-scale aggregation inputs.
    Rows are labelled with resolution and width (at ``width_mult``, default the genotype's).
    """
    wm = genotype.width_mult if width_mult is None else width_mult
    widths = scaled_widths(genotype.widths, wm)
    nb = len(widths)
    n_mod = genotype.modules_per_stage
    cols = genotype.stages * n_mod
    fig = Figure(figsize=(2.2 + 1.25 * cols + 1.6, 1.0 + 0.9 * nb))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xlim(-2.2, cols + 1.6)
    ax.set_ylim(nb - 0.3, -1.2)
    ax.axis("off")
    h, w = input_hw
    for k in range(nb):
        f = 4 * 2 ** k
        ax.text(-2.1, k, f"1/{f}  {-(-h // f)}x{-(-w // f)}\nC={widths[k]}", va="center",
                ha="left", fontsize=8)
        ax.plot([-0.9, -0.6], [k, k], color="black", lw=1)
    ax.add_patch(FancyBboxPatch((-1.05, -0.3), 0.3, nb - 0.4, boxstyle="round,pad=0.02",
                                fc="#dddddd", ec="black"))
    ax.text(-0.9, -0.75, "stem", ha="center", fontsize=8)
    for s, vector in enumerate(genotype.scale_vectors):
        colour = _STAGE_COLOURS[s % len(_STAGE_COLOURS)]
        x0 = s * n_mod
        ax.text(x0 + n_mod / 2 - 0.5, -0.95,
                f"stage {s + 1}  [{''.join(str(b) for b in vector)}]", ha="center", fontsize=9,
                color=colour, weight="bold")
        active = [k for k, b in enumerate(vector) if b]
        for m in range(n_mod):
            x = x0 + m
            for k in range(nb):
                # The feature flows along every row; the box or the dashes say what is done.
                ax.plot([x - 0.5, x - 0.3], [k, k], color="black", lw=1)
                ax.plot([x + 0.3, x + 0.5], [k, k], color="black", lw=1)
                if k in active:
                    ax.add_patch(FancyBboxPatch((x - 0.3, k - 0.25), 0.6, 0.5,
                                                boxstyle="round,pad=0.02", fc=colour,
                                                ec="black", alpha=0.9))
                    ax.text(x - 0.15, k, "I I", ha="center", va="center", fontsize=7,
                            color="white")
                else:
                    ax.plot([x - 0.3, x + 0.3], [k, k], color="#999999", lw=1.2, ls="--")
            for j in active:
                for k in active:
                    if j != k:
                        # Cross-scale inputs of the aggregation cell (right half of the box).
                        ax.add_patch(FancyArrowPatch((x + 0.04, j), (x + 0.26, k),
                                                     arrowstyle="-|>", mutation_scale=6,
                                                     color="black", lw=0.6, alpha=0.7))
    x_head = cols + 0.1
    ax.add_patch(FancyBboxPatch((x_head - 0.05, -0.3), 0.3, nb - 0.4, boxstyle="round,pad=0.02",
                                fc="#dddddd", ec="black"))
    ax.text(x_head + 0.1, -0.75, "head", ha="center", fontsize=8)
    ax.text(x_head + 0.45, (nb - 1) / 2, f"upsample +\n{genotype.head_fuse}\n1x1 conv\n-> K maps",
            va="center", fontsize=8)
    return _save(fig, path)


def _cell_layout(cell: CellGenotype, sources: list[str]) -> dict[str, tuple[float, float]]:
    pos: dict[str, tuple[float, float]] = {}
    n_in = len(sources)
    for r, s in enumerate(sources):
        pos[s] = (0.0, (r - (n_in - 1) / 2) * 1.2)
    for i in range(cell.nodes):
        # Nodes step right and alternate up/down so edges between them stay readable.
        pos[f"node{i}"] = (1.6 + 1.5 * i, 0.9 * (1 if i % 2 else -1))
    pos["output"] = (1.6 + 1.5 * cell.nodes, 0.0)
    return pos


def draw_cell(cell: CellGenotype, path: str | Path, kind: str = "individual",
              num_slots: int = 4, title: str | None = None) -> Path:
    """Cell DAG: inputs on the left, nodes in the middle, the concat + 1x1 output on the right;
    every kept edge is an arrow coloured and labelled by its op."""
    if kind == "individual":
        sources = ["input"]
    else:
        sources = [f"scale{j}" for j in range(num_slots)]
    pos = _cell_layout(cell, sources)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    fig = Figure(figsize=(2.0 + 1.6 * cell.nodes, 1.5 + 0.9 * len(sources)))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
    ax.axis("off")
    ax.set_title(title or f"{kind} cell", fontsize=10)
    for i, src, op in cell.edges:
        (x0, y0), (x1, y1) = pos[src], pos[f"node{i}"]
        # Same-row node pairs (two apart) would be joined straight through the node between.
        rad = 0.25 if src.startswith("node") and (i - int(src[4:])) % 2 == 0 else 0.0
        colour = _OP_COLOURS.get(op, "black")
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=10,
                                     color=colour, lw=1.4, shrinkA=14, shrinkB=14,
                                     connectionstyle=f"arc3,rad={rad}"))
        # Labels of edges from the cell inputs sit nearer the start, so parallel edges into
        # one node do not stack their labels.
        t = 0.3 if src.startswith(("input", "scale")) else 0.6
        ax.text(x0 + t * (x1 - x0), y0 + t * (y1 - y0) + 0.12 + 0.6 * rad, op,
                fontsize=6.5, color=colour, ha="center",
                bbox={"fc": "white", "ec": "none", "alpha": 0.7, "pad": 0.5})
    for i in range(cell.nodes):
        ax.add_patch(FancyArrowPatch(pos[f"node{i}"], pos["output"], arrowstyle="-|>",
                                     mutation_scale=8, color="#bbbbbb", lw=0.8, ls="--",
                                     shrinkA=14, shrinkB=18))
    for name, (x, y) in pos.items():
        is_node = name.startswith("node")
        label = name if name != "output" else "concat\n+ 1x1"
        ax.text(x, y, label, ha="center", va="center", fontsize=7.5,
                bbox={"boxstyle": "round,pad=0.35", "fc": "#fff2cc" if is_node else "#dae8fc",
                      "ec": "black"})
    return _save(fig, path)


def draw_genotype(genotype: Genotype, out_dir: str | Path,
                  input_hw: tuple[int, int] = (256, 192)) -> dict[str, Path]:
    """All drawings of a genotype into ``out_dir``: ``network.png``, ``individual_cell.png``
    and (unless the concat ablation) ``aggregation_cell.png``."""
    out = Path(out_dir)
    paths = {"network": draw_network(genotype, out / "network.png", input_hw),
             "individual_cell": draw_cell(genotype.individual, out / "individual_cell.png",
                                          "individual")}
    if genotype.aggregation is not None:
        paths["aggregation_cell"] = draw_cell(genotype.aggregation, out / "aggregation_cell.png",
                                              "aggregation", len(genotype.widths))
    return paths
