"""Multi-scale modules driven by scale vectors: every vector of a stage, no work and no gradient
for inactive branches, all-off stage is identity."""

from __future__ import annotations

import itertools

import pytest
import torch

from autopose.config import ModelConfig
from autopose.search_space.supernet import Supernet


def tiny_cfg(**kw: object) -> ModelConfig:
    """Tiny search space: distinct small widths so resampling changes shapes."""
    base: dict[str, object] = {"branch_channels": [4, 6, 8, 10], "stem_channels": 8}
    base.update(kw)
    return ModelConfig(**base)  # type: ignore[arg-type]


VECTORS = [list(v) for v in itertools.product([0, 1], repeat=4)]


@pytest.fixture(scope="module")
def net() -> Supernet:
    torch.manual_seed(0)
    return Supernet(tiny_cfg(modules_per_stage=2))


@pytest.mark.parametrize("agg", ["cell", "concat"])
def test_all_16_scale_vectors_of_a_stage(agg: str) -> None:
    torch.manual_seed(0)
    net = Supernet(tiny_cfg(aggregation=agg))
    x = torch.randn(2, 3, 64, 48)
    assert len(VECTORS) == 16
    for v in VECTORS:
        net.zero_grad(set_to_none=True)
        # The stage under test is stage 1; the others are all-off (identity), so the test
        # pays for one stage only and stage 1's outputs reach the loss through the head.
        vectors = [[0, 0, 0, 0], v, [0, 0, 0, 0]]
        y = net(x, vectors, tau=1.0)
        assert y.shape == (2, 17, 16, 12), v
        y.pow(2).mean().backward()
        for module in net.stages[1]:
            for k, branch in enumerate(module.branches):
                grads = [p.grad for p in branch.parameters()]
                if not v[k]:
                    assert all(g is None for g in grads), f"{v}: inactive branch {k} has grad"
                    continue
                # Active: its 1x1 output conv learns, and only active inputs' resamplers do.
                out_conv = branch.agg.fuse if agg == "concat" else branch.agg.compress
                assert out_conv[0].weight.grad is not None, (v, k)
                for j, res in branch.agg.resample.items():
                    has = [p.grad is not None for p in res.parameters()]
                    assert all(has) if v[int(j)] else not any(has), (v, k, j)
        for p in net.arch_parameters():
            # The shared alphas learn through any active branch; with none active nothing ran.
            assert (p.grad is not None) == any(v), v


def test_inactive_branches_in_every_stage_get_no_gradient(net: Supernet) -> None:
    x = torch.randn(2, 3, 64, 48)
    vectors = [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 1]]
    net.zero_grad(set_to_none=True)
    net(x, vectors).sum().backward()
    for s, stage in enumerate(net.stages):
        for module in stage:
            for k, branch in enumerate(module.branches):
                touched = any(p.grad is not None for p in branch.parameters())
                assert touched == bool(vectors[s][k]), (s, k)


def test_all_off_stage_is_identity(net: Supernet) -> None:
    x = torch.randn(2, 3, 64, 48)
    xs = net.stem(x)
    ops = net.sample_ops(1.0)
    out = net.forward_stage(0, xs, [0, 0, 0, 0], ops)
    assert all(a is b for a, b in zip(out, xs))
    # and a whole network of all-off stages is stem + head
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x, [[0] * 4] * 3), net.head(net.stem(x)))
    net.train()


def test_all_off_network_cells_get_no_gradient(net: Supernet) -> None:
    net.zero_grad(set_to_none=True)
    net(torch.randn(2, 3, 64, 48), [[0] * 4] * 3).sum().backward()
    assert all(p.grad is None for p in net.stages.parameters())
    assert all(p.grad is None for p in net.arch_parameters())
    assert net.stem.conv1[0][0].weight.grad is not None


def test_alphas_are_shared_and_shaped(net: Supernet) -> None:
    assert net.alpha_individual.shape == (6, 6)  # 3 nodes: 1 + 2 + 3 edges; 6 ops
    assert net.alpha_aggregation.shape == (15, 6)  # 3 nodes x 4 scales + 0 + 1 + 2
    names = [n for n, _ in net.named_parameters() if "alpha" in n]
    assert names == ["alpha_individual", "alpha_aggregation"]
    assert len(net.weight_parameters()) + 2 == len(list(net.parameters()))


def test_one_sample_per_forward_shared_by_all_cells(net: Supernet) -> None:
    """Every individual cell runs the same op on the same edge within one forward pass."""
    used: dict[int, set[str]] = {}
    handles = []
    for module_name, m in net.named_modules():
        if module_name.endswith(("ind1", "ind2")):
            for e, edge in enumerate(m.edges):
                for op_name, op in edge.ops.items():
                    def hook(*_: object, e: int = e, op_name: str = op_name) -> None:
                        used.setdefault(e, set()).add(op_name)
                    handles.append(op.register_forward_hook(hook))
    net(torch.randn(1, 3, 64, 48), [[1, 1, 1, 1]] * 3, tau=0.5)
    for h in handles:
        h.remove()
    assert net.last_ops is not None
    assert {e: {net.ops[i]} for e, i in enumerate(net.last_ops.individual.indices)} == used
