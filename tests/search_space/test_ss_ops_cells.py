"""Candidate ops and mixed cells: shapes, one op per edge, straight-through gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autopose.errors import UserError
from autopose.search_space.cells import (EdgeChoices, MixedAggregationCell, MixedIndividualCell,
                                         Resample, aggregation_edges, individual_edges)
from autopose.search_space.ops import OPS, check_ops, _avg_pool_3x3, _max_pool_3x3


@pytest.mark.parametrize("name", list(OPS))
def test_every_op_keeps_shape(name: str) -> None:
    x = torch.randn(2, 6, 9, 7)
    assert OPS[name](6)(x).shape == x.shape


@pytest.mark.parametrize("shape", [(2, 3, 9, 7), (1, 2, 1, 1), (1, 1, 2, 5)])
def test_fast_cpu_pooling_equals_torch_pooling(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape)
    torch.testing.assert_close(_max_pool_3x3(x), F.max_pool2d(x, 3, 1, 1), rtol=0, atol=0)
    torch.testing.assert_close(_avg_pool_3x3(x),
                               F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))


def test_unknown_op_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"model.ops\[1\]: unknown operation 'conv_7x7'"):
        check_ops(["skip", "conv_7x7"])


def test_edge_layouts() -> None:
    assert individual_edges(3) == [(0, "input"), (1, "input"), (1, "node0"), (2, "input"),
                                   (2, "node0"), (2, "node1")]
    agg = aggregation_edges(3, 4)
    assert len(agg) == 3 * 4 + 3
    assert agg[:5] == [(0, "scale0"), (0, "scale1"), (0, "scale2"), (0, "scale3"), (1, "scale0")]


def _count_calls(module: torch.nn.Module) -> dict[str, int]:
    """Forward-call counters ``"<edge>:<op>" -> n`` on every op of a mixed cell."""
    calls: dict[str, int] = {}
    for e, edge in enumerate(module.edges):  # type: ignore[attr-defined]
        for op_name, op in edge.ops.items():
            key = f"{e}:{op_name}"
            calls[key] = 0

            def hook(*_: object, key: str = key) -> None:
                calls[key] += 1
            op.register_forward_hook(hook)
    return calls


def test_mixed_individual_cell_runs_only_sampled_ops_and_alpha_gets_gradient() -> None:
    torch.manual_seed(0)
    ops = list(OPS)
    cell = MixedIndividualCell(5, 3, ops)
    calls = _count_calls(cell)
    alpha = torch.nn.Parameter(torch.zeros(len(individual_edges(3)), len(ops)))
    choices = EdgeChoices.sample(alpha, tau=1.0)
    y = cell(torch.randn(2, 5, 8, 6), choices)
    assert y.shape == (2, 5, 8, 6)
    ran = {k for k, n in calls.items() if n}
    assert ran == {f"{e}:{ops[i]}" for e, i in enumerate(choices.indices)}
    assert all(n == 1 for n in calls.values() if n)
    y.pow(2).mean().backward()
    assert alpha.grad is not None
    assert (alpha.grad.abs().sum(dim=1) > 0).all()  # every edge's row receives gradient
    # ops that did not run get no gradient
    for e, edge in enumerate(cell.edges):
        for name, op in edge.ops.items():
            for p in op.parameters():
                assert (p.grad is not None) == (name == ops[choices.indices[e]])


def test_straight_through_choices_run_fixed_ops_and_pass_alpha_gradient() -> None:
    torch.manual_seed(1)
    ops = list(OPS)
    cell = MixedIndividualCell(5, 3, ops)
    alpha = torch.nn.Parameter(torch.randn(len(individual_edges(3)), len(ops)))
    want = [(2 * e + 1) % len(ops) for e in range(alpha.shape[0])]
    choices = EdgeChoices.straight_through(alpha, want)
    assert choices.indices == want
    assert torch.allclose(choices.weights, F.one_hot(torch.tensor(want), len(ops)).float())
    calls = _count_calls(cell)
    cell(torch.randn(2, 5, 8, 6), choices).pow(2).mean().backward()
    assert {k for k, n in calls.items() if n} == {f"{e}:{ops[i]}" for e, i in enumerate(want)}
    assert alpha.grad is not None and (alpha.grad.abs().sum(dim=1) > 0).all()
    fixed = EdgeChoices.fixed(want, len(ops))
    assert torch.equal(fixed.weights, choices.weights.detach()) and not fixed.weights.requires_grad


def test_mixed_aggregation_cell_skips_inactive_inputs() -> None:
    torch.manual_seed(0)
    ops = ["conv_3x3", "skip"]
    ch = [4, 6, 8, 10]
    cell = MixedAggregationCell(1, ch, 3, ops)
    calls = _count_calls(cell)
    choices = EdgeChoices.fixed([0] * len(aggregation_edges(3, 4)), len(ops))
    sizes = {0: (16, 12), 1: (8, 6), 2: (4, 3), 3: (2, 2)}
    inputs = {j: torch.randn(2, ch[j], *sizes[j]) for j in (1, 3)}  # branches 0, 2 inactive
    y = cell(inputs, sizes[1], choices)
    assert y.shape == (2, 6, 8, 6)
    for e, (i, src) in enumerate(cell.edge_list):
        ran = calls[f"{e}:conv_3x3"]
        assert ran == (0 if src in ("scale0", "scale2") else 1), (e, i, src)


def test_resample_shapes_and_structure() -> None:
    ch = [4, 6, 8, 10]
    down = Resample(0, 3, ch)  # three stride-2 convs, ReLU between, last one to 10 channels
    convs = [m for m in down.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == \
        [(4, 4, (2, 2)), (4, 4, (2, 2)), (4, 10, (2, 2))]
    assert sum(isinstance(m, torch.nn.ReLU) for m in down.modules()) == 2
    assert down(torch.randn(1, 4, 16, 12), (2, 2)).shape == (1, 10, 2, 2)
    up = Resample(3, 1, ch)
    convs = [m for m in up.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(10, 6, (1, 1))]
    x = torch.randn(1, 10, 2, 3)
    y = up(x, (4, 6))
    assert y.shape == (1, 6, 4, 6)
    # Nearest upsampling (HRNet convention): every 2x2 block repeats one low-res value.
    torch.testing.assert_close(y, up.layers(x).repeat_interleave(2, -1).repeat_interleave(2, -2))
