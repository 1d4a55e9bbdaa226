"""Gradient averaging of a search step: one all-reduce per tensor against bucketed ones.

The bi-level search averages gradients itself (every rank runs the same sampled
sub-network, so DDP's fixed buckets do not apply). This measures, side by side in one run,
the two ways on the gradient set of real supernet samples: ``torch.distributed.all_reduce``
on each gradient tensor (the search step before), and
:func:`autopose.engine.distributed.all_reduce_mean_`, which packs them into flat buckets.

Usage (2 processes on this machine; gloo on CPU, NCCL on GPUs)::

    torchrun --standalone --nproc_per_node=2 bench/grad_allreduce.py \\
        [--config configs/coco/search_256x192.yaml] [--samples 4] [--reps 10]

Rank 0 prints the number of gradient tensors, their size, the median time of each way over
interleaved repetitions, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import torch
import torch.distributed as dist

from autopose.config import CONFIG_DIR, load_config
from autopose.engine import distributed as ddp
from autopose.search_space.supernet import Supernet


def sample_grads(net: Supernet, rng: random.Random, device: torch.device) -> list[torch.Tensor]:
    """The gradient tensors of one uniform sample (each branch on with probability 1/2, at
    least one per stage), after a backward of a tiny input: the set a search step reduces."""
    nb = len(net.channels)
    vectors = []
    for _ in range(net.num_stages):
        v = [int(rng.random() < 0.5) for _ in range(nb)]
        if not any(v):
            v[rng.randrange(nb)] = 1
        vectors.append(v)
    net.zero_grad(set_to_none=True)
    net(torch.randn(1, 3, 64, 48, device=device), vectors, tau=1.0).sum().backward()
    return [p.grad for p in net.parameters() if p.grad is not None]


def per_tensor(grads: list[torch.Tensor], world: int) -> None:
    for g in grads:
        dist.all_reduce(g)
        g /= world


def median_seconds(fn, device: torch.device, reps: int) -> float:
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(CONFIG_DIR / "coco" / "search_256x192.yaml"))
    p.add_argument("--samples", type=int, default=4, help="sub-networks to measure")
    p.add_argument("--reps", type=int, default=10, help="repetitions of each way per sample")
    args = p.parse_args()

    info = ddp.init_distributed()
    device, world = info.device, info.world_size
    if world < 2:
        raise SystemExit("run under torchrun with --nproc_per_node=2 or more")
    cfg = load_config(args.config)
    torch.manual_seed(0)
    net = Supernet(cfg.model, 17).to(device)
    rng = random.Random(0)  # the same samples on every rank
    rows = []
    for _ in range(args.samples):
        grads = sample_grads(net, rng, device)
        per_tensor(grads, world)  # warm-up of both
        ddp.all_reduce_mean_(grads)
        a, b = [], []
        for _ in range(args.reps):  # interleaved, so drift on a noisy machine hits both
            a.append(median_seconds(lambda: per_tensor(grads, world), device, 1))
            b.append(median_seconds(lambda: ddp.all_reduce_mean_(grads), device, 1))
        mb = sum(g.numel() * g.element_size() for g in grads) / 2 ** 20
        rows.append((len(grads), mb, statistics.median(a), statistics.median(b)))
    if info.is_main:
        print(f"{world} processes, backend {dist.get_backend()}, device {device}, "
              f"torch {torch.__version__}, {os.cpu_count()} CPUs; config {args.config}")
        print("| tensors | MiB | per tensor (ms) | bucketed (ms) | ratio |")
        print("|---|---|---|---|---|")
        for n, mb, ta, tb in rows:
            print(f"| {n} | {mb:.1f} | {ta * 1e3:.1f} | {tb * 1e3:.1f} | {ta / tb:.1f}x |")
    ddp.cleanup()


if __name__ == "__main__":
    main()
