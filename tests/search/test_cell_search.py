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
from autopose.search_space.ops import _max_pool_3x3

EDGES = 8


def planted_search(target_op: str, seed: int = 0, relaxed: bool = True) -> list[str]:
    """Run the planted search; return the argmax op of every edge."""
    torch.manual_seed(seed)
    cfg = load_config(DEFAULT_CONFIG)
    s, ops = cfg.search, list(cfg.model.ops)
    edges = torch.nn.ModuleList([MixedEdge(4, ops, affine=cfg.model.search_op_affine)
                                 for _ in range(EDGES)])
    alpha = torch.nn.Parameter(1e-3 * torch.randn(EDGES, len(ops)))
    w_opt = optim.adam(edges.parameters(), s.weight_lr)
    a_opt = optim.adam([alpha], s.alpha_lr, tuple(s.alpha_betas), s.alpha_weight_decay)
    steps = s.epochs * s.iters_per_epoch // s.alpha_every  # the built-in search's alpha steps

    def loss_of(choices: EdgeChoices) -> torch.Tensor:
        x = torch.randn(16, 4, 8, 8)
        target = _max_pool_3x3(x) if target_op == "max_pool_3x3" else x
        outs = [edge(x, choices.weights[e], choices.index(e)) for e, edge in enumerate(edges)]
        return sum(F.mse_loss(y, target) for y in outs) / EDGES

    for step in range(steps):
        t = step / max(1, steps - 1)
        tau = s.tau_start + (s.tau_end - s.tau_start) * t
        if s.alpha_lr_schedule == "cosine":
            a_opt.param_groups[0]["lr"] = 0.5 * s.alpha_lr * (1 + math.cos(math.pi * t))
        for opt, choices in ((w_opt, EdgeChoices.sample(alpha, tau)),
                             (a_opt, EdgeChoices.relax(alpha, tau) if relaxed
                              else EdgeChoices.sample(alpha, tau))):
            opt.zero_grad(set_to_none=True)
            loss_of(choices).backward()
            opt.step()
    return [ops[i] for i in alpha.detach().argmax(-1).tolist()]


@pytest.mark.parametrize("target_op", ["max_pool_3x3", "skip"])
def test_cell_search_finds_the_planted_op(target_op):
    for seed in (0, 1):
        found = planted_search(target_op, seed)
        assert sum(op == target_op for op in found) >= EDGES - 1, found


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
