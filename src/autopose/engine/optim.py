"""Optimizers built with the fastest update kernel the parameters' device has, and the
training step's precision (``train.optimizer``, ``train.amp``)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any

import torch

from autopose.config import TrainConfig


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


def for_training(t: TrainConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer ``train.optimizer`` names (adam | sgd)."""
    if t.optimizer == "sgd":
        return sgd(params, t.lr, t.momentum, t.weight_decay)
    return adam(params, t.lr, weight_decay=t.weight_decay)


def autocast(amp: str, device: torch.device) -> Any:
    """The forward pass's mixed-precision context for ``train.amp`` (CUDA only; else none)."""
    if device.type != "cuda" or amp == "none":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def grad_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler | None:
    """The loss scaler float16 needs on CUDA; None otherwise (bfloat16 and float32 need none)."""
    if device.type == "cuda" and amp == "fp16":
        return torch.amp.GradScaler("cuda")
    return None
