"""Individual cells and aggregation cells (paper section 3.1.2, eqs. 2-4), mixed and discrete.

Edge layout, shared by the mixed cells, the alpha tensors and the genotype:

* individual cell with B nodes: node i has one incoming edge from ``"input"`` and one from
  each earlier node ``"node0" .. "node{i-1}"``; B(B+1)/2 edges in all.
* aggregation cell with B' nodes over S branches: node i has one incoming edge per input
  slot ``"scale0" .. "scale{S-1}"``, indexed by the input's *absolute* scale, then one from each
  earlier node; B'S + B'(B'-1)/2 edges. Because the slots are absolute, the same edge (and the
  same alpha row) serves any set of active branches; an edge from an inactive branch is not
  computed.

The edge index is the position in :func:`individual_edges` / :func:`aggregation_edges`; the
mixed cells keep their edges in a ``ModuleList`` and the discrete cells keep only the kept
edges in a ``ModuleDict`` keyed by the same index, so the two have the same state-dict names
and the supernet's weights copy into a derived network by name.

The *mixed* forms run an edge in one of two ways, set by the :class:`EdgeChoices` they are given
(one sample shared by all cells of a kind):

* hard (the weight step, and every fixed choice): exactly one op per edge, the op of a hard
  Gumbel-softmax sample; its output is multiplied by its one-hot weight (value 1). A weight
  step then costs about what the sampled sub-network costs.
* relaxed (the alpha step, paper eq. 4): every candidate op of the edge runs, and the edge's
  output is their sum weighted by a soft Gumbel-softmax sample. Only then does the alpha
  gradient compare ops: through a hard sample it only asks whether the one op that ran should
  be scaled up or down.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autopose.search_space.ops import OPS, ConvBN


def individual_edges(nodes: int) -> list[tuple[int, str]]:
    """``[(node, source), ...]`` of an individual cell, in edge-index order."""
    return [(i, src) for i in range(nodes)
            for src in ["input"] + [f"node{m}" for m in range(i)]]


def aggregation_edges(nodes: int, num_slots: int) -> list[tuple[int, str]]:
    """``[(node, source), ...]`` of an aggregation cell, in edge-index order."""
    return [(i, src) for i in range(nodes)
            for src in [f"scale{j}" for j in range(num_slots)] + [f"node{m}" for m in range(i)]]


@dataclass
class EdgeChoices:
    """The op chosen on every edge of one kind of cell, for one forward pass.

    ``weights``: ``(E, O)``: one-hot rows (from a hard Gumbel-softmax sample they carry the
    straight-through gradient to alpha; fixed choices carry none), or the soft rows of a
    relaxed sample. ``indices``: the ``E`` chosen op indices as Python ints, read once per
    forward so that no edge needs a device sync; None for a relaxed sample (every op runs).
    """

    weights: torch.Tensor
    indices: list[int] | None

    @property
    def relaxed(self) -> bool:
        return self.indices is None

    def index(self, edge: int) -> int | None:
        """The op index of ``edge``, or None when every op runs (relaxed)."""
        return None if self.indices is None else self.indices[edge]

    @staticmethod
    def fixed(indices: list[int], num_ops: int, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> "EdgeChoices":
        """Choices fixed by the caller: one-hot rows without gradient."""
        idx = torch.as_tensor(list(indices), dtype=torch.long, device=device)
        weights = F.one_hot(idx, num_ops).to(dtype)
        return EdgeChoices(weights, [int(i) for i in indices])

    @staticmethod
    def straight_through(alpha: torch.Tensor, indices: list[int]) -> "EdgeChoices":
        """Choices fixed by the caller that still give ``alpha`` ``(E, O)`` its gradient: the
        one-hot rows plus ``softmax(alpha) - stop_gradient(softmax(alpha))``, as a hard Gumbel
        sample does (for benchmarks that time a search step on fixed ops)."""
        soft = F.softmax(alpha, dim=-1)
        hard = EdgeChoices.fixed(indices, alpha.shape[-1], alpha.device, soft.dtype)
        return EdgeChoices(hard.weights - soft.detach() + soft, hard.indices)

    @staticmethod
    def sample(alpha: torch.Tensor, tau: float) -> "EdgeChoices":
        """Hard straight-through Gumbel-softmax sample of ``alpha`` ``(E, O)`` at temperature
        ``tau``."""
        weights = F.gumbel_softmax(alpha, tau=tau, hard=True, dim=-1)
        return EdgeChoices(weights, weights.detach().argmax(dim=-1).tolist())

    @staticmethod
    def relax(alpha: torch.Tensor, tau: float) -> "EdgeChoices":
        """Soft Gumbel-softmax sample of ``alpha`` ``(E, O)`` at temperature ``tau`` (paper eq. 4):
        every op of every edge runs, weighted by its row."""
        return EdgeChoices(F.gumbel_softmax(alpha, tau=tau, hard=False, dim=-1), None)


class MixedEdge(nn.Module):
    """All candidate ops of one edge; the forward runs the chosen one, or all of them (relaxed).

    ``affine``: whether the ops' BatchNorms learn a scale and shift (not in the supernet,
    as in DARTS; ``ops.py`` says why).
    """

    def __init__(self, channels: int, ops: list[str], affine: bool = False) -> None:
        super().__init__()
        self.names = list(ops)
        self.ops = nn.ModuleDict({name: OPS[name](channels, affine) for name in ops})

    def forward(self, x: torch.Tensor, weight_row: torch.Tensor,
                index: int | None) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``: the chosen op's output times its one-hot weight,
        or (``index`` None) the sum of every op's output weighted by ``weight_row`` ``(O,)``."""
        if index is not None:
            return self.ops[self.names[index]](x) * weight_row[index]
        return _sum([op(x) * weight_row[j] for j, op in enumerate(self.ops.values())])


class DiscreteEdge(nn.Module):
    """One fixed op; kept in a one-entry ``ModuleDict`` so its parameter names match MixedEdge."""

    def __init__(self, channels: int, op: str) -> None:
        super().__init__()
        self.name = op
        self.ops = nn.ModuleDict({op: OPS[op](channels)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        return self.ops[self.name](x)


class Resample(nn.Module):
    """Bring branch ``src``'s tensor to branch ``dst``'s scale and width (HRNet convention).

    Down (src finer than dst): one 3x3 stride-2 conv-BN per factor of 2, ReLU between them; the
    intermediate convs keep src's width and the last one changes it to dst's.
    Up (src coarser): 1x1 conv-BN to dst's width, then nearest upsampling to the target size
    (given as a size rather than a factor so odd feature sizes still line up).
    """

    def __init__(self, src: int, dst: int, channels: list[int]) -> None:
        super().__init__()
        if src == dst:
            raise ValueError("Resample needs two different scales")
        self.up = src > dst
        if self.up:
            self.layers = nn.Sequential(ConvBN(channels[src], channels[dst], 1))
        else:
            layers: list[nn.Module] = []
            steps = dst - src
            for s in range(steps):
                last = s == steps - 1
                layers.append(ConvBN(channels[src], channels[dst] if last else channels[src], 3, 2))
                if not last:
                    layers.append(nn.ReLU(inplace=True))
            self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(N, C_src, H_src, W_src) -> (N, C_dst, *size)``."""
        y = self.layers(x)
        if self.up:
            y = F.interpolate(y, size=size, mode="nearest")
        return y


def _sum(terms: list[torch.Tensor]) -> torch.Tensor:
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


# ----------------------------------------------------------------------------- mixed


class MixedIndividualCell(nn.Module):
    """Individual cell of the supernet: every edge holds every candidate op (eq. 2 and 4)."""

    def __init__(self, channels: int, nodes: int, ops: list[str], affine: bool = False) -> None:
        super().__init__()
        self.nodes = nodes
        self.edge_list = individual_edges(nodes)
        self.edges = nn.ModuleList([MixedEdge(channels, ops, affine) for _ in self.edge_list])
        self.compress = ConvBN(nodes * channels, channels, 1)

    def forward(self, x: torch.Tensor, choices: EdgeChoices) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H, W)`` with the op of each edge given by ``choices``."""
        states = {"input": x}
        per_node: list[list[torch.Tensor]] = [[] for _ in range(self.nodes)]
        for e, (i, src) in enumerate(self.edge_list):
            per_node[i].append(self.edges[e](states[src], choices.weights[e], choices.index(e)))
            # Edges are ordered node by node, so node i is complete once its last edge is done.
            if e + 1 == len(self.edge_list) or self.edge_list[e + 1][0] != i:
                states[f"node{i}"] = _sum(per_node[i])
        return self.compress(torch.cat([states[f"node{i}"] for i in range(self.nodes)], dim=1))


class MixedAggregationCell(nn.Module):
    """Aggregation cell of the supernet for target branch ``target`` (eq. 3 and 4)."""

    def __init__(self, target: int, channels: list[int], nodes: int, ops: list[str],
                 affine: bool = False) -> None:
        super().__init__()
        self.target = target
        self.nodes = nodes
        self.resample = nn.ModuleDict({str(j): Resample(j, target, channels)
                                       for j in range(len(channels)) if j != target})
        self.edge_list = aggregation_edges(nodes, len(channels))
        self.edges = nn.ModuleList([MixedEdge(channels[target], ops, affine)
                                    for _ in self.edge_list])
        self.compress = ConvBN(nodes * channels[target], channels[target], 1)

    def forward(self, inputs: dict[int, torch.Tensor], size: tuple[int, int],
                choices: EdgeChoices) -> torch.Tensor:
        """Fuse the active branches' individual-cell outputs at this branch's scale.

        ``inputs``: ``{scale j: (N, C_j, H_j, W_j)}`` for the active branches only (it always
        holds ``target``). Returns ``(N, C_target, *size)``.
        """
        states: dict[str, torch.Tensor] = {}
        for j, h in inputs.items():
            states[f"scale{j}"] = h if j == self.target else self.resample[str(j)](h, size)
        per_node: list[list[torch.Tensor]] = [[] for _ in range(self.nodes)]
        for e, (i, src) in enumerate(self.edge_list):
            if src in states:  # an edge from an inactive branch is simply not computed
                per_node[i].append(self.edges[e](states[src], choices.weights[e],
                                                 choices.index(e)))
            if e + 1 == len(self.edge_list) or self.edge_list[e + 1][0] != i:
                # Never empty: node i always has the edge from the (active) target slot.
                states[f"node{i}"] = _sum(per_node[i])
        return self.compress(torch.cat([states[f"node{i}"] for i in range(self.nodes)], dim=1))


class ConcatAggregation(nn.Module):
    """Ablation ``model.aggregation: concat``: resample, concatenate, 1x1 conv-BN.

    ``slots`` are the input scales the layer is built for (all of them in the supernet, the
    active ones in a derived network). The 1x1 conv's input channels are laid out slot by slot;
    with a subset of the slots present the supernet uses the matching columns of its weight,
    which is exactly a 1x1 conv over the concatenation of the present inputs.
    """

    def __init__(self, target: int, channels: list[int], slots: list[int]) -> None:
        super().__init__()
        self.target = target
        self.slots = sorted(slots)
        c = channels[target]
        self.resample = nn.ModuleDict({str(j): Resample(j, target, channels)
                                       for j in self.slots if j != target})
        self.fuse = ConvBN(len(self.slots) * c, c, 1)

    def forward(self, inputs: dict[int, torch.Tensor], size: tuple[int, int],
                choices: EdgeChoices | None = None) -> torch.Tensor:
        """``{scale j: (N, C_j, H_j, W_j)}`` -> ``(N, C_target, *size)``; choices are unused."""
        present = sorted(j for j in inputs if j in self.slots)
        xs = [inputs[j] if j == self.target else self.resample[str(j)](inputs[j], size)
              for j in present]
        x = torch.cat(xs, dim=1)
        conv, bn = self.fuse[0], self.fuse[1]
        if present == self.slots:
            return bn(conv(x))
        c = conv.out_channels
        cols = torch.cat([torch.arange(self.slots.index(j) * c, (self.slots.index(j) + 1) * c)
                          for j in present]).to(conv.weight.device)
        return bn(F.conv2d(x, conv.weight.index_select(1, cols)))


# -------------------------------------------------------------------------- discrete


class DiscreteIndividualCell(nn.Module):
    """Individual cell built from a genotype: only the kept edges, each with its one op."""

    def __init__(self, channels: int, nodes: int, edges: list[tuple[int, str, str]]) -> None:
        super().__init__()
        self.nodes = nodes
        index = {key: e for e, key in enumerate(individual_edges(nodes))}
        # In edge-index order, so node sums add up in the same order as in the mixed cell.
        ordered = sorted(edges, key=lambda t: index[(t[0], t[1])])
        self.plan = [(i, src, str(index[(i, src)])) for i, src, _ in ordered]
        self.edges = nn.ModuleDict({str(index[(i, src)]): DiscreteEdge(channels, op)
                                    for i, src, op in ordered})
        self.compress = ConvBN(nodes * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        states = {"input": x}
        per_node: list[list[torch.Tensor]] = [[] for _ in range(self.nodes)]
        for n, (i, src, key) in enumerate(self.plan):
            per_node[i].append(self.edges[key](states[src]))
            if n + 1 == len(self.plan) or self.plan[n + 1][0] != i:
                states[f"node{i}"] = _sum(per_node[i])
        return self.compress(torch.cat([states[f"node{i}"] for i in range(self.nodes)], dim=1))


class DiscreteAggregationCell(nn.Module):
    """Aggregation cell built from a genotype for one target branch and one active set.

    Only what can run exists: edges whose source is an inactive branch are dropped, and so are
    nodes left with no incoming edge (and the edges leaving them). The 1x1 compression then
    takes only the live nodes; ``compress[0].source_in_index`` records which input channels of
    the supernet's compression they are, for weight copying. If no node is live (possible when
    every kept edge reads an inactive branch), the cell passes its own branch's input through:
    our choice, since the paper does not cover it.
    """

    def __init__(self, target: int, channels: list[int], nodes: int,
                 edges: list[tuple[int, str, str]], active: list[int]) -> None:
        super().__init__()
        self.target = target
        c = channels[target]
        index = {key: e for e, key in enumerate(aggregation_edges(nodes, len(channels)))}
        live = {f"scale{j}" for j in active}
        plan: list[tuple[int, str, str, str]] = []
        for i, src, op in sorted(edges, key=lambda t: index[(t[0], t[1])]):
            if src in live:
                plan.append((i, src, str(index[(i, src)]), op))
            # Edges are sorted by node, so by the time node i+1's edges come, node i is settled.
            if any(p[0] == i for p in plan):
                live.add(f"node{i}")
        self.live_nodes = sorted({i for i, *_ in plan})
        self.plan = [(i, src, key) for i, src, key, _ in plan]
        used = sorted({int(src[5:]) for _, src, _ in self.plan if src.startswith("scale")})
        self.resample = nn.ModuleDict({str(j): Resample(j, target, channels)
                                       for j in used if j != target})
        self.edges = nn.ModuleDict({key: DiscreteEdge(c, op) for _, _, key, op in plan})
        self.compress: nn.Module | None = None
        if self.live_nodes:
            self.compress = ConvBN(len(self.live_nodes) * c, c, 1)
            if len(self.live_nodes) != nodes:
                self.compress[0].source_in_index = [i * c + k for i in self.live_nodes
                                                    for k in range(c)]

    def forward(self, inputs: dict[int, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """``{scale j: (N, C_j, H_j, W_j)}`` -> ``(N, C_target, *size)``."""
        if self.compress is None:
            return inputs[self.target]
        states: dict[str, torch.Tensor] = {}
        for j, h in inputs.items():
            if j == self.target:
                states[f"scale{j}"] = h
            elif str(j) in self.resample:
                states[f"scale{j}"] = self.resample[str(j)](h, size)
        per_node: dict[int, list[torch.Tensor]] = {i: [] for i in self.live_nodes}
        for n, (i, src, key) in enumerate(self.plan):
            per_node[i].append(self.edges[key](states[src]))
            if n + 1 == len(self.plan) or self.plan[n + 1][0] != i:
                states[f"node{i}"] = _sum(per_node[i])
        return self.compress(torch.cat([states[f"node{i}"] for i in self.live_nodes], dim=1))
