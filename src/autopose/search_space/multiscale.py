"""The multi-scale module (paper section 3.1.1, eq. 1; SPEC section 2), driven by a scale vector.

Branch k holds two individual cells and one aggregation cell. With scale vector ``v``:

* ``v[k] = 1``: ``x_k <- Agg_k({j: Ind2_j(Ind1_j(x_j)) for every active j})``;
* ``v[k] = 0``: ``x_k`` passes through unchanged; branch k's cells run no forward, so they
  get no gradient (their ``.grad`` stays None), and no other branch's aggregation cell reads it.

An all-zero vector makes the module the identity, which is how the search covers depth.

``MultiScaleModule`` is the supernet's (mixed cells, any scale vector per call);
``DiscreteMultiScaleModule`` is a derived network's (built for one scale vector, holding only
the active branches, under the same state-dict names).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from autopose.search_space.cells import (ConcatAggregation, DiscreteAggregationCell,
                                         DiscreteIndividualCell, EdgeChoices,
                                         MixedAggregationCell, MixedIndividualCell)


class Branch(nn.Module):
    """One branch of a multi-scale module: ``ind1``, ``ind2`` and ``agg``."""

    def __init__(self, ind1: nn.Module, ind2: nn.Module, agg: nn.Module) -> None:
        super().__init__()
        self.ind1 = ind1
        self.ind2 = ind2
        self.agg = agg


class MultiScaleModule(nn.Module):
    """Supernet multi-scale module over ``len(channels)`` branches."""

    def __init__(self, channels: list[int], individual_nodes: int, aggregation_nodes: int,
                 ops: list[str], aggregation: str = "cell", affine: bool = False) -> None:
        super().__init__()
        self.aggregation = aggregation
        n = len(channels)
        branches = []
        for k, c in enumerate(channels):
            if aggregation == "cell":
                agg: nn.Module = MixedAggregationCell(k, channels, aggregation_nodes, ops, affine)
            else:
                agg = ConcatAggregation(k, channels, list(range(n)))
            branches.append(Branch(MixedIndividualCell(c, individual_nodes, ops, affine),
                                   MixedIndividualCell(c, individual_nodes, ops, affine), agg))
        self.branches = nn.ModuleList(branches)

    def forward(self, xs: list[torch.Tensor], scale_vector: Sequence[bool],
                individual: EdgeChoices, aggregation: EdgeChoices | None) -> list[torch.Tensor]:
        """``xs[k]``: ``(N, C_k, H_k, W_k)`` for every branch -> the same shapes.

        ``individual`` / ``aggregation``: the op chosen on each edge of each kind of cell,
        shared by every branch (aggregation is None for the concat ablation).
        """
        active = [k for k, on in enumerate(scale_vector) if on]
        out = list(xs)
        if not active:
            return out
        h = {}
        for k in active:
            br = self.branches[k]
            h[k] = br.ind2(br.ind1(xs[k], individual), individual)
        for k in active:
            out[k] = self.branches[k].agg(h, tuple(xs[k].shape[-2:]), aggregation)
        return out


class DiscreteMultiScaleModule(nn.Module):
    """Derived-network multi-scale module: only the active branches of ``scale_vector`` exist.

    ``individual_edges`` / ``aggregation_edges``: the kept ``(node, source, op)`` edges of the
    cell genotypes (``aggregation_edges`` is None for the concat ablation).
    """

    def __init__(self, channels: list[int], scale_vector: Sequence[bool], individual_nodes: int,
                 individual_edges: list[tuple[int, str, str]], aggregation_nodes: int,
                 aggregation_edges: list[tuple[int, str, str]] | None) -> None:
        super().__init__()
        self.active = [k for k, on in enumerate(scale_vector) if on]
        branches = {}
        for k in self.active:
            if aggregation_edges is None:
                agg: nn.Module = ConcatAggregation(k, channels, self.active)
            else:
                agg = DiscreteAggregationCell(k, channels, aggregation_nodes, aggregation_edges,
                                              self.active)
            branches[str(k)] = Branch(
                DiscreteIndividualCell(channels[k], individual_nodes, individual_edges),
                DiscreteIndividualCell(channels[k], individual_nodes, individual_edges), agg)
        # Keyed by absolute branch index, so names match the supernet's ModuleList.
        self.branches = nn.ModuleDict(branches)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """``xs[k]``: ``(N, C_k, H_k, W_k)`` for every branch -> the same shapes."""
        out = list(xs)
        h = {}
        for k in self.active:
            br = self.branches[str(k)]
            h[k] = br.ind2(br.ind1(xs[k]))
        for k in self.active:
            out[k] = self.branches[str(k)].agg(h, tuple(xs[k].shape[-2:]))
        return out
