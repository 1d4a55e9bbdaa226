"""The derived network is exactly the sampled sub-network of the supernet."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from autopose.config import ModelConfig
from autopose.models.derived import DerivedNetwork, copy_supernet_weights, supernet_tensors
from autopose.search_space.genotype import CellGenotype, derive_genotype, genotype_from_choices
from autopose.search_space.supernet import Supernet

ALL_OPS = ["conv_1x1", "conv_3x3", "conv_5x5", "avg_pool_3x3", "max_pool_3x3", "skip",
           "sep_conv_3x3", "dil_conv_3x3"]


def tiny_cfg(**kw: object) -> ModelConfig:
    base: dict[str, object] = {"branch_channels": [4, 6, 8, 10], "stem_channels": 8,
                               "ops": list(ALL_OPS)}
    base.update(kw)
    return ModelConfig(**base)  # type: ignore[arg-type]


def _sampled_pair(agg: str, vectors: list[list[int]], seed: int
                  ) -> tuple[Supernet, DerivedNetwork, object]:
    torch.manual_seed(seed)
    cfg = tiny_cfg(aggregation=agg)
    net = Supernet(cfg)
    x = torch.randn(2, 3, 64, 48)
    net(x, vectors, tau=1.0)  # a Gumbel sample, as during search
    sampled = net.last_ops
    ind = sampled.individual.indices
    agg_idx = sampled.aggregation.indices if sampled.aggregation is not None else None
    fixed = net.fixed_ops(ind, agg_idx)
    # Give BN non-trivial running statistics, so eval mode is a real test of copied buffers.
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(4, 3, 64, 48) * 2 + 0.5, vectors, ops=fixed)
    genotype = genotype_from_choices(cfg, vectors, ind, agg_idx, width_mult=1.0)
    derived = DerivedNetwork(genotype, width_mult=1.0)
    copy_supernet_weights(derived, net)
    return net, derived, fixed


CASES = [("cell", [[1, 0, 1, 1], [0, 1, 0, 0], [1, 1, 1, 1]], 0),
         ("cell", [[0, 0, 0, 0], [1, 0, 0, 1], [0, 1, 1, 0]], 1),
         ("cell", [[0, 0, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]], 2),
         ("concat", [[1, 1, 0, 1], [0, 0, 1, 0], [0, 1, 1, 1]], 3)]


@pytest.mark.parametrize("agg,vectors,seed", CASES)
def test_supernet_with_fixed_ops_equals_derived_network(agg: str, vectors: list[list[int]],
                                                        seed: int) -> None:
    net, derived, fixed = _sampled_pair(agg, vectors, seed)
    net.eval()
    derived.eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        a = net(x, vectors, ops=fixed)
        b = derived(x)
        fa = net.features(x, vectors, ops=fixed)
        fb = derived.features(x)
    assert a.shape == b.shape == (2, 17, 16, 12)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    # The branch features too: O(1) values (cell outputs end in BN), all four scales.
    for k, (u, v) in enumerate(zip(fa, fb)):
        assert u.shape == v.shape
        assert u.std() > 1e-2, k
        torch.testing.assert_close(v, u, rtol=1e-5, atol=1e-5)

    # Only active branches exist in the derived network.
    names = {n for n, _ in derived.named_parameters()}
    for s, v in enumerate(vectors):
        for m in range(2):
            for k in range(4):
                present = any(n.startswith(f"stages.{s}.{m}.branches.{k}.") for n in names)
                assert present == bool(v[k]), (s, m, k)
    assert sum(p.numel() for p in derived.parameters()) < sum(
        p.numel() for p in net.weight_parameters())

    # The comparison can fail: disturb one copied weight of the last active cell and the
    # features part.
    last = max(s for s, v in enumerate(vectors) if any(v))
    k = max(k for k, on in enumerate(vectors[last]) if on)
    with torch.no_grad():
        agg = derived.stages[last][1].branches[str(k)].agg
        out_conv_bn = agg.fuse if agg_mode_is_concat(agg) else agg.compress
        out_conv_bn[1].bias.add_(1e-3)
        assert (derived.features(x)[k] - fa[k]).abs().max() > 5e-4


def agg_mode_is_concat(agg: torch.nn.Module) -> bool:
    return hasattr(agg, "fuse")


def test_derived_keeps_only_kept_edges() -> None:
    cfg = tiny_cfg()
    g = torch.Generator().manual_seed(0)
    genotype = derive_genotype(torch.randn(6, 8, generator=g), torch.randn(15, 8, generator=g),
                               replace(cfg, aggregation_edges_per_node=2), [[1, 1, 1, 1]] * 3,
                               edges_per_node=2)
    net = DerivedNetwork(genotype, width_mult=2.0)
    cell = net.stages[0][0].branches["0"].ind1
    assert len(cell.edges) == 5  # 1 + 2 + 2
    for (_, _, op), key in zip(genotype.individual.edges, cell.edges.keys()):
        assert list(cell.edges[key].ops.keys()) == [op]
    agg = net.stages[0][0].branches["2"].agg
    assert len(agg.edges) == 6  # 2 per node
    assert net.channels == [8, 12, 16, 20]
    assert net(torch.randn(1, 3, 64, 48)).shape == (1, 17, 16, 12)


def test_dead_aggregation_nodes_are_dropped() -> None:
    """Kept edges that all read inactive branches leave a node (or a cell) without input."""
    cfg = tiny_cfg()
    genotype = genotype_from_choices(cfg, [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 1]],
                                     [1] * 6, [1] * 15)
    genotype.aggregation = CellGenotype(3, [(0, "scale2", "conv_3x3"), (0, "scale3", "skip"),
                                            (1, "scale1", "conv_1x1"), (1, "node0", "skip"),
                                            (2, "node0", "conv_3x3"), (2, "node1", "skip")])
    net = DerivedNetwork(genotype, width_mult=1.0)
    stage0 = net.stages[0][0].branches["0"].agg  # only branch 0: nothing reaches any node
    assert stage0.compress is None and len(stage0.edges) == 0
    stage1 = net.stages[1][0].branches["0"].agg  # scale1 live: node1 and node2 live, node0 dead
    assert stage1.live_nodes == [1, 2]
    assert list(stage1.resample.keys()) == ["1"]
    stage2 = net.stages[2][0].branches["3"].agg  # scale3 live
    assert stage2.live_nodes == [0, 1, 2]
    assert net(torch.randn(1, 3, 64, 48)).shape == (1, 17, 16, 12)
    # Weights still copy from a supernet (the compression takes the live nodes' columns).
    sup = Supernet(cfg)
    copy_supernet_weights(net, sup)
    c = 4
    torch.testing.assert_close(stage1.compress[0].weight,
                               sup.stages[1][0].branches[0].agg.compress[0].weight[:, c:3 * c])


def test_kept_supernet_tensors_follow_in_place_updates():
    """A search keeps ``supernet_tensors`` for all its rewards: the copies must see the
    weights as they are after later (in-place) optimiser steps, not as they were."""
    cfg = tiny_cfg()
    sup = Supernet(cfg)
    tensors = supernet_tensors(sup)
    genotype = genotype_from_choices(cfg, [[1, 1, 1, 1]] * 3, [1] * 6, [5] * 15)
    before = DerivedNetwork(genotype, 1.0)
    copy_supernet_weights(before, sup, tensors)
    with torch.no_grad():
        for p in sup.parameters():
            p.add_(0.5)
    cached, fresh = DerivedNetwork(genotype, 1.0), DerivedNetwork(genotype, 1.0)
    copy_supernet_weights(cached, sup, tensors)
    copy_supernet_weights(fresh, sup)
    for (name, a), b in zip(cached.state_dict().items(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    # Every copied parameter moved (the no-affine BN fills, 1 and 0, do not come from it).
    sup_names = {n for n, _ in sup.named_parameters()}  # once: the comprehension is O(n) then
    copied = {n for n, _ in cached.named_parameters() if n in sup_names}
    assert copied
    b = dict(before.named_parameters())
    assert all(not torch.equal(p, b[n]) for n, p in cached.named_parameters() if n in copied)


def test_short_schedule_genotype_builds_as_documented():
    """configs/synthetic/genotype_short.json, which docs/training.md and train_short.yaml
    describe: three branches at most, conv 3x3 and skip edges, 0.39 M parameters at width 1."""
    from conftest import REPO
    from autopose.models.derived import build_derived

    net = build_derived(str(REPO / "configs" / "synthetic" / "genotype_short.json"), 1.0)
    g = net.genotype
    assert g.scale_vectors == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]]
    params = sum(p.numel() for p in net.parameters())
    assert round(params / 1e6, 2) == 0.39
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 128, 96)).shape == (1, 17, 32, 24)
