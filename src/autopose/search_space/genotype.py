"""Genotypes: the searched architecture as a dataclass and a versioned JSON file.

A genotype holds the two cell genotypes (kept edges, each ``(node, source, op)``), the scale
vector of every stage, and what the derived network needs besides: op set, branch widths
(at width 1, i.e. the supernet's), default width multiplier, stem width, stages, modules per
stage, aggregation mode and head fusion. File layout (``version`` 1)::

    {"version": 1, "ops": [...], "widths": [16, 32, 64, 128], "width_mult": 2.0,
     "stem_channels": 64, "stages": 3, "modules_per_stage": 2,
     "scale_vectors": [[1, 1, 0, 0], ...], "aggregation": "cell", "head_fuse": "concat",
     "edges_per_node": 2,
     "individual_cell": {"nodes": 3, "edges": [
         {"node": 0, "source": "input", "op": "conv_3x3"}, ...]},
     "aggregation_cell": {"nodes": 3, "edges": [
         {"node": 0, "source": "scale1", "op": "skip"}, ...]}}

Sources: ``"input"`` (individual cells), ``"scale{j}"`` (aggregation cells: branch j's
resampled input, by absolute scale) and ``"node{m}"`` (an earlier node). ``aggregation_cell`` is
null for the ``concat`` ablation. Loading validates everything and raises
:class:`~autopose.errors.UserError` naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autopose.config import ModelConfig
from autopose.errors import UserError
from autopose.io import read_json, write_json
from autopose.search_space.cells import aggregation_edges, individual_edges
from autopose.search_space.ops import check_ops

GENOTYPE_VERSION = 1

Edge = tuple[int, str, str]  # (node, source, op)


@dataclass
class CellGenotype:
    """One cell's kept edges, sorted by edge index."""

    nodes: int
    edges: list[Edge]

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": self.nodes,
                "edges": [{"node": i, "source": s, "op": op} for i, s, op in self.edges]}


@dataclass
class Genotype:
    """A searched AutoPose architecture (cell genotypes + per-stage scale vectors)."""

    ops: list[str]
    widths: list[int]
    scale_vectors: list[list[int]]
    individual: CellGenotype
    aggregation: CellGenotype | None
    aggregation_mode: str = "cell"
    width_mult: float = 2.0
    stem_channels: int = 64
    modules_per_stage: int = 2
    head_fuse: str = "concat"
    edges_per_node: int = 2

    @property
    def stages(self) -> int:
        return len(self.scale_vectors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": GENOTYPE_VERSION,
            "ops": list(self.ops),
            "widths": list(self.widths),
            "width_mult": self.width_mult,
            "stem_channels": self.stem_channels,
            "stages": self.stages,
            "modules_per_stage": self.modules_per_stage,
            "scale_vectors": [[int(b) for b in v] for v in self.scale_vectors],
            "aggregation": self.aggregation_mode,
            "head_fuse": self.head_fuse,
            "edges_per_node": self.edges_per_node,
            "individual_cell": self.individual.to_dict(),
            "aggregation_cell": None if self.aggregation is None else self.aggregation.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the versioned JSON form atomically."""
        return write_json(path, self.to_dict())

    @staticmethod
    def load(path: str | Path) -> "Genotype":
        """Read and validate a genotype file; UserError naming file and field when bad."""
        return Genotype.from_dict(read_json(path, "genotype"), str(path))

    @staticmethod
    def from_dict(data: Any, source: str = "<genotype>") -> "Genotype":
        """Validate the JSON form and build the dataclass."""
        return _parse(data, source)


# ---------------------------------------------------------------------------- validation

_KEYS = {"version", "ops", "widths", "width_mult", "stem_channels", "stages", "modules_per_stage",
         "scale_vectors", "aggregation", "head_fuse", "edges_per_node", "individual_cell",
         "aggregation_cell"}


def _fail(source: str, key: str, msg: str) -> UserError:
    return UserError(f"{source}: {key}: {msg}")


# Upper bounds far above any searched or hand-made network (the paper's: 4 branches of at
# most 128 x 2 channels, 3-node cells, 3 stages of 2 modules), so that a file cannot ask for
# a network that takes all memory to build (cells grow with nodes squared).
MAX_NODES, MAX_BRANCHES, MAX_CHANNELS, MAX_STAGES, MAX_MODULES, MAX_WIDTH_MULT = \
    16, 16, 4096, 16, 64, 64.0


def _int(data: dict[str, Any], key: str, source: str, minimum: int, name: str | None = None,
         maximum: int | None = None) -> int:
    name = name or key
    if key not in data:
        raise _fail(source, name, "missing")
    v = data[key]
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise _fail(source, name, f"expected an integer >= {minimum}, got {v!r:.40}")
    if maximum is not None and v > maximum:
        raise _fail(source, name, f"expected at most {maximum}, got {v}")
    return v


def _choice(data: dict[str, Any], key: str, source: str, allowed: tuple[str, ...]) -> str:
    if key not in data:
        raise _fail(source, key, "missing")
    v = data[key]
    if v not in allowed:
        raise _fail(source, key, f"expected one of {', '.join(allowed)}, got {v!r:.40}")
    return v


def _parse_cell(data: Any, key: str, source: str, ops: list[str],
                num_slots: int | None) -> CellGenotype:
    """Check one cell genotype; ``num_slots`` None means an individual cell."""
    if not isinstance(data, dict):
        raise _fail(source, key, f"expected an object with nodes and edges, got {data!r:.60}")
    unknown = set(data) - {"nodes", "edges"}
    if unknown:
        raise _fail(source, f"{key}.{sorted(unknown)[0]}", "unknown key")
    nodes = _int(data, "nodes", source, 1, f"{key}.nodes", MAX_NODES)
    layout = individual_edges(nodes) if num_slots is None else aggregation_edges(nodes, num_slots)
    index = {e: n for n, e in enumerate(layout)}
    edges = data.get("edges")
    if not isinstance(edges, list):
        raise _fail(source, f"{key}.edges", f"expected a list, got {edges!r:.60}")
    out: list[Edge] = []
    seen: set[tuple[int, str]] = set()
    for n, e in enumerate(edges):
        where = f"{key}.edges[{n}]"
        if not isinstance(e, dict) or set(e) != {"node", "source", "op"}:
            raise _fail(source, where, f"expected {{node, source, op}}, got {e!r:.60}")
        i, src, op = e["node"], e["source"], e["op"]
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < nodes:
            raise _fail(source, f"{where}.node", f"expected 0..{nodes - 1}, got {i!r}")
        if not isinstance(src, str) or (i, src) not in index:
            valid = [s for j, s in layout if j == i]
            raise _fail(source, f"{where}.source",
                        f"{src!r} is not an input of node {i} (valid: {', '.join(valid)})")
        if op not in ops:
            raise _fail(source, f"{where}.op", f"{op!r} is not in the genotype's ops")
        if (i, src) in seen:
            raise _fail(source, where, f"duplicate edge {src} -> node{i}")
        seen.add((i, src))
        out.append((i, src, op))
    for i in range(nodes):
        if not any(j == i for j, _, _ in out):
            raise _fail(source, f"{key}.edges", f"node {i} has no incoming edge")
    out.sort(key=lambda t: index[(t[0], t[1])])
    return CellGenotype(nodes, out)


def _parse(data: Any, source: str) -> Genotype:
    if not isinstance(data, dict):
        raise UserError(f"{source}: top level must be a JSON object")
    version = data.get("version")
    if version is None:
        raise _fail(source, "version", "missing (not an autopose genotype file?)")
    if version != GENOTYPE_VERSION or isinstance(version, bool):  # true == 1 in Python
        raise _fail(source, "version",
                    f"unsupported version {version!r} (this autopose reads version "
                    f"{GENOTYPE_VERSION})")
    unknown = set(data) - _KEYS
    if unknown:
        raise _fail(source, sorted(unknown)[0], "unknown key")
    if "ops" not in data:
        raise _fail(source, "ops", "missing")
    ops = check_ops(data["ops"], f"{source}: ops")
    widths = data.get("widths")
    if (not isinstance(widths, list) or not 1 <= len(widths) <= MAX_BRANCHES
            or any(not isinstance(w, int) or isinstance(w, bool) or not 1 <= w <= MAX_CHANNELS
                   for w in widths)):
        raise _fail(source, "widths", f"expected a list of positive integers (1 to "
                                      f"{MAX_BRANCHES}, each at most {MAX_CHANNELS}), got "
                                      f"{widths!r:.60}")
    wm = data.get("width_mult", 2.0)
    # Not `wm <= 0` alone: NaN compares false with everything.
    if not isinstance(wm, (int, float)) or isinstance(wm, bool) or not 0 < wm <= MAX_WIDTH_MULT:
        raise _fail(source, "width_mult", f"expected a positive number (at most "
                                          f"{MAX_WIDTH_MULT:g}), got {wm!r:.40}")
    stem = _int(data, "stem_channels", source, 1, maximum=MAX_CHANNELS)
    stages = _int(data, "stages", source, 1, maximum=MAX_STAGES)
    modules = _int(data, "modules_per_stage", source, 1, maximum=MAX_MODULES)
    mode = _choice(data, "aggregation", source, ("cell", "concat"))
    head_fuse = _choice(data, "head_fuse", source, ("concat", "sum"))
    k = data.get("edges_per_node", 0)
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise _fail(source, "edges_per_node", f"expected an integer >= 0, got {k!r}")
    sv = data.get("scale_vectors")
    if not isinstance(sv, list) or len(sv) != stages:
        raise _fail(source, "scale_vectors",
                    f"expected {stages} vectors (one per stage), got {sv!r:.60}")
    for s, v in enumerate(sv):
        if (not isinstance(v, list) or len(v) != len(widths)
                or any(b not in (0, 1) or isinstance(b, (float, bool)) for b in v)):
            raise _fail(source, f"scale_vectors[{s}]",
                        f"expected {len(widths)} bits (one per branch), got {v!r:.60}")
    if "individual_cell" not in data:
        raise _fail(source, "individual_cell", "missing")
    ind = _parse_cell(data["individual_cell"], "individual_cell", source, ops, None)
    agg_data = data.get("aggregation_cell")
    agg = None
    if mode == "cell":
        if agg_data is None:
            raise _fail(source, "aggregation_cell", "missing (aggregation is 'cell')")
        agg = _parse_cell(agg_data, "aggregation_cell", source, ops, len(widths))
    elif agg_data is not None:
        raise _fail(source, "aggregation_cell", "must be null when aggregation is 'concat'")
    return Genotype(ops=ops, widths=list(widths), scale_vectors=[[int(b) for b in v] for v in sv],
                    individual=ind, aggregation=agg, aggregation_mode=mode, width_mult=float(wm),
                    stem_channels=stem, modules_per_stage=modules, head_fuse=head_fuse,
                    edges_per_node=k)


def check_compatible(genotype: Genotype, cfg: ModelConfig, source: str = "<genotype>") -> None:
    """Raise UserError when ``genotype`` was not made in the search space ``cfg`` describes."""
    pairs = [("ops", genotype.ops, list(cfg.ops)),
             ("widths", genotype.widths, list(cfg.branch_channels)),
             ("stages", genotype.stages, cfg.num_stages),
             ("modules_per_stage", genotype.modules_per_stage, cfg.modules_per_stage),
             ("aggregation", genotype.aggregation_mode, cfg.aggregation),
             ("individual_cell.nodes", genotype.individual.nodes, cfg.individual_nodes)]
    if genotype.aggregation is not None:
        pairs.append(("aggregation_cell.nodes", genotype.aggregation.nodes, cfg.aggregation_nodes))
    for name, got, want in pairs:
        if got != want:
            raise _fail(source, name, f"{got!r} does not match the config's {want!r} "
                                      f"(incompatible search space)")


# ---------------------------------------------------------------------------- derivation


def _derive_cell(alpha: torch.Tensor, layout: list[tuple[int, str]], ops: list[str],
                 nodes: int, k: int) -> CellGenotype:
    """Argmax op per edge; per node the ``k`` edges with the highest op probability (0: all)."""
    probs = torch.softmax(alpha.detach().float(), dim=-1).cpu()
    best_p, best_op = probs.max(dim=-1)
    kept: list[Edge] = []
    for i in range(nodes):
        cand = [e for e, (j, _) in enumerate(layout) if j == i]
        # Stable sort: ties keep edge order, so derivation is deterministic.
        cand.sort(key=lambda e: -float(best_p[e]))
        chosen = sorted(cand if k <= 0 else cand[:k])
        kept += [(i, layout[e][1], ops[int(best_op[e])]) for e in chosen]
    return CellGenotype(nodes, kept)


def derive_genotype(alpha_individual: torch.Tensor, alpha_aggregation: torch.Tensor | None,
                    cfg: ModelConfig, scale_vectors: Sequence[Sequence[int | bool]],
                    edges_per_node: int | None = None) -> Genotype:
    """Genotype from the alphas (``(E, O)`` each) and the chosen scale vectors.

    ``edges_per_node``: incoming edges kept per node of an individual cell (default
    ``cfg.edges_per_node``; 0 keeps every edge); aggregation cells follow
    ``cfg.aggregation_edges_per_node``.
    """
    ops = list(cfg.ops)
    k = cfg.edges_per_node if edges_per_node is None else edges_per_node
    nb = len(cfg.branch_channels)
    ind = _derive_cell(alpha_individual, individual_edges(cfg.individual_nodes), ops,
                       cfg.individual_nodes, k)
    agg = None
    if cfg.aggregation == "cell":
        if alpha_aggregation is None:
            raise ValueError("alpha_aggregation is needed when model.aggregation is 'cell'")
        agg = _derive_cell(alpha_aggregation, aggregation_edges(cfg.aggregation_nodes, nb), ops,
                           cfg.aggregation_nodes, cfg.aggregation_edges_per_node)
    return _assemble(cfg, scale_vectors, ind, agg, k, cfg.width_mult)


def genotype_from_choices(cfg: ModelConfig, scale_vectors: Sequence[Sequence[int | bool]],
                          individual: list[int], aggregation: list[int] | None,
                          width_mult: float = 1.0) -> Genotype:
    """Genotype of one sampled sub-network: every edge kept, with the op chosen on it.

    ``individual`` / ``aggregation``: op index per edge (e.g. ``supernet.last_ops.*.indices``).
    With ``width_mult`` 1 the derived network has exactly the supernet's shapes.
    """
    ops = list(cfg.ops)
    ind_layout = individual_edges(cfg.individual_nodes)
    ind = CellGenotype(cfg.individual_nodes,
                       [(i, s, ops[o]) for (i, s), o in zip(ind_layout, individual, strict=True)])
    agg = None
    if cfg.aggregation == "cell":
        if aggregation is None:
            raise ValueError("aggregation choices are needed when model.aggregation is 'cell'")
        layout = aggregation_edges(cfg.aggregation_nodes, len(cfg.branch_channels))
        agg = CellGenotype(cfg.aggregation_nodes,
                           [(i, s, ops[o]) for (i, s), o in zip(layout, aggregation, strict=True)])
    return _assemble(cfg, scale_vectors, ind, agg, 0, width_mult)


def _assemble(cfg: ModelConfig, scale_vectors: Sequence[Sequence[int | bool]], ind: CellGenotype,
              agg: CellGenotype | None, k: int, width_mult: float) -> Genotype:
    if isinstance(scale_vectors, torch.Tensor):
        scale_vectors = scale_vectors.tolist()
    sv = [[int(bool(b)) for b in v] for v in scale_vectors]
    if len(sv) != cfg.num_stages or any(len(v) != len(cfg.branch_channels) for v in sv):
        raise ValueError(f"scale_vectors: expected {cfg.num_stages} x "
                         f"{len(cfg.branch_channels)} bits, got {sv}")
    return Genotype(ops=list(cfg.ops), widths=list(cfg.branch_channels), scale_vectors=sv,
                    individual=ind, aggregation=agg, aggregation_mode=cfg.aggregation,
                    width_mult=float(width_mult), stem_channels=cfg.stem_channels,
                    modules_per_stage=cfg.modules_per_stage, head_fuse=cfg.head_fuse,
                    edges_per_node=k)
