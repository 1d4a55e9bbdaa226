"""The planted-op instrument of the cell-level search (paper eq. 4; SPEC section 3).

Independent mixed edges, each with its own alpha row, learn to reproduce a target that exactly
one candidate op can produce: a 3x3 max-pool of the input, or the input itself (skip). The
search alternates as ``autopose search`` does (a weight step on a hard Gumbel-softmax sample,
an alpha step through the relaxation, Adam with the built-in config's alpha settings, the
temperature annealed from ``tau_start`` to ``tau_end``) for as many alpha steps as the built-in
search takes, with its alpha learning-rate schedule. The right op must win nearly every edge. A relaxation that did not compare ops
(the straight-through hard sample) or a weight decay that pins the alphas fails it.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from autopose.config import DEFAULT_CONFIG, load_config
from autopose.engine import optim
from autopose.search_space.cells import EdgeChoices, MixedEdge
from autopose.search.bilevel import alpha_objective, expected_cost, op_costs
from autopose.search_space.ops import OPS, _max_pool_3x3
from autopose.search_space.supernet import SampledOps

EDGES = 8


def planted_search(target_op: str, seed: int = 0, relaxed: bool = True,
                   cost_weight: float | None = None, weight_steps: int = 1,
                   weight_lr: float | None = None) -> list[str]:
    """Run the planted search; return the argmax op of every edge.

    ``cost_weight``: the alpha step's cost term (default: the built-in config's);
    ``weight_steps`` weight steps (at ``weight_lr``, default the config's) per alpha step."""
    torch.manual_seed(seed)
    cfg = load_config(DEFAULT_CONFIG)
    s, ops = cfg.search, list(cfg.model.ops)
    w_cost = s.alpha_cost_weight if cost_weight is None else cost_weight
    cost = op_costs(ops)
    # A conv_3x3 target: a fixed random ReLU-conv-BN, which conv_5x5 can produce as well
    # (zero outer ring); only the cost term tells the two apart.
    planted_conv = OPS["conv_3x3"](4, False)
    edges = torch.nn.ModuleList([MixedEdge(4, ops, affine=cfg.model.search_op_affine)
                                 for _ in range(EDGES)])
    alpha = torch.nn.Parameter(1e-3 * torch.randn(EDGES, len(ops)))
    w_opt = optim.adam(edges.parameters(), weight_lr or s.weight_lr)
    a_opt = optim.adam([alpha], s.alpha_lr, tuple(s.alpha_betas), s.alpha_weight_decay)
    steps = s.epochs * s.iters_per_epoch // s.alpha_every  # the built-in search's alpha steps

    def loss_of(choices: EdgeChoices) -> torch.Tensor:
        x = torch.randn(16, 4, 8, 8)
        with torch.no_grad():
            target = {"max_pool_3x3": _max_pool_3x3, "conv_3x3": planted_conv,
                      "skip": lambda t: t}[target_op](x)
        outs = [edge(x, choices.weights[e], choices.index(e)) for e, edge in enumerate(edges)]
        loss = sum(F.mse_loss(y, target) for y in outs) / EDGES
        if choices.relaxed:  # the alpha step's objective, as BilevelSearch._step's
            loss = alpha_objective(loss, SampledOps(choices, None), cost, w_cost)
        return loss

    for step in range(steps):
        t = step / max(1, steps - 1)
        tau = s.tau_start + (s.tau_end - s.tau_start) * t
        if s.alpha_lr_schedule == "cosine":
            a_opt.param_groups[0]["lr"] = 0.5 * s.alpha_lr * (1 + math.cos(math.pi * t))
        plan = [(w_opt, EdgeChoices.sample(alpha, tau)) for _ in range(weight_steps)]
        plan.append((a_opt, EdgeChoices.relax(alpha, tau) if relaxed
                     else EdgeChoices.sample(alpha, tau)))
        for opt, choices in plan:
            opt.zero_grad(set_to_none=True)
            loss_of(choices).backward()
            opt.step()
    return [ops[i] for i in alpha.detach().argmax(-1).tolist()]


@pytest.mark.parametrize("target_op", ["max_pool_3x3", "skip"])
def test_cell_search_finds_the_planted_op(target_op):
    for seed in (0, 1):
        found = planted_search(target_op, seed)
        assert sum(op == target_op for op in found) >= EDGES - 1, found


def test_cost_term_prefers_the_cheaper_of_two_exact_ops():
    """Planted cost: a 3x3 conv target, which a 5x5 conv fits as exactly. With the cost
    term (weight 1) the 3x3 wins nearly every edge; without it, about half. Measured, 3x3
    wins of 8 edges for seeds 0-7: weight 0: 5 4 2 2 6 5 6 4 (34/64); weight 1:
    5 8 7 8 7 7 7 8 (57/64); weight 2: 7 7 8 8 8 8 5 7 (58/64); weight 8 (earlier draw
    order) fell back to about 4 of 8, the cheaper ops that fit worse winning. Six weight steps
    per alpha step (the built-in alpha_every) at lr 1e-2, so that the edges' convolutions
    learn the target within the built-in search's 41 alpha steps."""
    def wins(weight: float, seed: int) -> int:
        found = planted_search("conv_3x3", seed, cost_weight=weight, weight_steps=6,
                               weight_lr=1e-2)
        return sum(op == "conv_3x3" for op in found)
    with_cost = [wins(1.0, seed) for seed in range(4)]
    without = [wins(0.0, seed) for seed in range(4)]
    assert sum(with_cost) >= 0.8 * 4 * EDGES, with_cost
    assert sum(without) <= sum(with_cost) - 8, (without, with_cost)


def test_expected_cost_is_the_weighted_op_cost():
    ops = ["conv_1x1", "conv_3x3", "conv_5x5", "avg_pool_3x3", "max_pool_3x3", "skip"]
    cost = op_costs(ops)
    assert torch.allclose(cost, torch.tensor([1 / 25, 9 / 25, 1.0, 0.0, 0.0, 0.0]))
    alpha = torch.zeros(2, 6, requires_grad=True)
    agg = torch.zeros(3, 6)
    agg[:, 2] = 1.0  # every aggregation edge a 5x5 conv: cost 1
    c = expected_cost(SampledOps(EdgeChoices(torch.softmax(alpha, -1), None),
                                 EdgeChoices(agg, None)), cost)
    assert math.isclose(c.item(), 0.5 * (cost.mean().item() + 1.0), rel_tol=1e-6)
    c.backward()
    assert (alpha.grad[:, 2] > 0).all() and (alpha.grad[:, 5] < 0).all()


def test_relaxed_sample_runs_every_op_weighted():
    """The relaxed edge is the weighted sum of every op's output; the hard one runs one op."""
    torch.manual_seed(0)
    ops = ["conv_3x3", "max_pool_3x3", "skip"]
    edge = MixedEdge(4, ops)
    x = torch.randn(2, 4, 6, 6)
    alpha = torch.zeros(1, 3, requires_grad=True)
    soft = EdgeChoices.relax(alpha, 1.0)
    assert soft.relaxed and soft.index(0) is None
    w = soft.weights[0]
    expected = sum(w[j] * edge.ops[name](x) for j, name in enumerate(ops))
    assert torch.allclose(edge(x, w, None), expected, atol=1e-6)
    edge(x, w, None).sum().backward()
    assert alpha.grad is not None and (alpha.grad.abs() > 0).all()
    hard = EdgeChoices.sample(alpha, 1.0)
    assert not hard.relaxed
    assert torch.allclose(edge(x, hard.weights[0], hard.index(0)),
                          edge.ops[ops[hard.index(0)]](x))
