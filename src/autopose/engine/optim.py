"""Optimizers built with the fastest update kernel the parameters' device has."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def fused_kernel(params: list[torch.nn.Parameter]) -> bool:
    """Whether torch's fused Adam/SGD kernel runs on every parameter (float, cpu or cuda).

    One fused kernel per step instead of several per parameter tensor: a derived network or
    a supernet has hundreds of small tensors, and the per-tensor Adam was 10 % of a CPU
    training step.
    """
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def adam(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999),
         weight_decay: float = 0.0) -> torch.optim.Adam:
    params = list(params)
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay,
                            fused=fused_kernel(params))


def sgd(params: Iterable[torch.nn.Parameter], lr: float, momentum: float,
        weight_decay: float = 0.0) -> torch.optim.SGD:
    params = list(params)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                           fused=fused_kernel(params))
