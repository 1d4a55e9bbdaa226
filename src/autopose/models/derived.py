"""The derived network: the searched architecture built from a genotype (SPEC section 2).

All branch widths are the genotype's (supernet) widths times ``width_mult`` (default: the
genotype's, 2 unless changed). Only the active branches of each stage and the kept edges of each
cell exist; stem and head are the supernet's. Module names match the supernet's, so
:func:`copy_supernet_weights` can load a sampled sub-network's weights (width_mult 1) by name.
"""

from __future__ import annotations

import torch
from torch import nn

from autopose.search_space.cells import ConcatAggregation
from autopose.search_space.genotype import Genotype
from autopose.search_space.multiscale import DiscreteMultiScaleModule
from autopose.search_space.supernet import Head, Stem, Supernet


def scale_channels(channels: int, width_mult: float) -> int:
    """``channels * width_mult`` rounded to a whole number of channels, at least one (the
    rounding of every width multiplier: derived networks and width-reduced HRNet)."""
    return max(1, int(round(channels * width_mult)))


def scaled_widths(widths: list[int], width_mult: float) -> list[int]:
    """Branch widths times the multiplier, rounded to whole channels (at least 1)."""
    return [scale_channels(c, width_mult) for c in widths]


class DerivedNetwork(nn.Module):
    """``forward(images (N, 3, H, W)) -> heatmaps (N, K, ceil(H/4), ceil(W/4))``."""

    def __init__(self, genotype: Genotype, width_mult: float | None = None,
                 num_joints: int = 17) -> None:
        super().__init__()
        self.genotype = genotype
        self.width_mult = genotype.width_mult if width_mult is None else float(width_mult)
        self.channels = scaled_widths(genotype.widths, self.width_mult)
        ind = genotype.individual
        agg = genotype.aggregation
        self.stem = Stem(genotype.stem_channels, self.channels)
        self.stages = nn.ModuleList([
            nn.ModuleList([DiscreteMultiScaleModule(
                self.channels, vector, ind.nodes, ind.edges,
                agg.nodes if agg is not None else 0, agg.edges if agg is not None else None)
                for _ in range(genotype.modules_per_stage)])
            for vector in genotype.scale_vectors])
        self.head = Head(self.channels, num_joints, genotype.head_fuse)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> ``(N, K, ceil(H/4), ceil(W/4))``."""
        return self.head(self.features(images))

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The branch features before the head: ``[(N, C_k, H / 2^(k+2), W / 2^(k+2))]``."""
        xs = self.stem(images)
        for stage in self.stages:
            for module in stage:
                xs = module(xs)
        return xs


SupernetTensors = tuple[dict[str, torch.Tensor], set[str]]


def supernet_tensors(supernet: Supernet) -> SupernetTensors:
    """The supernet's parameters and buffers by name, and the names of the BN scales and shifts
    it lacks. The tensors are the live ones (optimiser steps and ``load_state_dict`` update them
    in place), so a search computes this once: walking the supernet's modules took about 20 %
    of a reward's time."""
    src = dict(supernet.named_parameters())
    src.update(dict(supernet.named_buffers()))
    return src, _no_affine_bn_names(supernet)


@torch.no_grad()
def copy_supernet_weights(derived: nn.Module, supernet: Supernet,
                          tensors: SupernetTensors | None = None) -> None:
    """Copy every parameter and buffer of ``derived`` from the same-named one of ``supernet``.

    The derived network must have the supernet's widths (width_mult 1). Where a derived 1x1
    conv takes a subset of the supernet conv's input channels (dead aggregation nodes, concat
    ablation over fewer branches), the conv's ``source_in_index`` says which, or, for the concat
    ablation, its input-slot layout does. ``tensors``: ``supernet_tensors(supernet)``, if the
    caller keeps it.
    """
    src, no_affine = tensors if tensors is not None else supernet_tensors(supernet)
    col_index = _column_indices(derived, supernet)
    for name, t in list(derived.named_parameters()) + list(derived.named_buffers()):
        if name not in src and name in no_affine:
            # The supernet's candidate-op BN has no scale and shift: it is an affine BN with
            # scale 1 and shift 0.
            t.fill_(1.0 if name.endswith(".weight") else 0.0)
            continue
        if name not in src:
            raise KeyError(f"supernet has no tensor named {name!r}")
        s = src[name]
        if s.shape != t.shape:
            if name not in col_index:
                raise ValueError(f"{name}: shape {tuple(t.shape)} vs supernet {tuple(s.shape)}")
            s = s.index_select(1, torch.as_tensor(col_index[name], device=s.device))
        t.copy_(s)


def _no_affine_bn_names(supernet: Supernet) -> set[str]:
    """The weight and bias names an affine BatchNorm would have where the supernet's has none."""
    return {f"{name}.{leaf}" for name, m in supernet.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.affine
            for leaf in ("weight", "bias")}


def _column_indices(derived: nn.Module, supernet: Supernet) -> dict[str, list[int]]:
    """``weight name -> supernet input-channel indices`` for the derived convs that need it."""
    out: dict[str, list[int]] = {}
    for mname, m in derived.named_modules():
        idx = getattr(m, "source_in_index", None)
        if idx is not None:
            out[f"{mname}.weight"] = list(idx)
        if isinstance(m, ConcatAggregation):
            sup = supernet.get_submodule(mname)
            c = m.fuse[0].out_channels
            out[f"{mname}.fuse.0.weight"] = [sup.slots.index(j) * c + k
                                              for j in m.slots for k in range(c)]
    return out


def build_derived(genotype: Genotype | str, width_mult: float | None = None,
                  num_joints: int = 17) -> DerivedNetwork:
    """A derived network from a genotype or the path of a genotype.json."""
    if not isinstance(genotype, Genotype):
        genotype = Genotype.load(genotype)
    return DerivedNetwork(genotype, width_mult, num_joints)
