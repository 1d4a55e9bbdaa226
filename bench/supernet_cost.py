"""Search-space cost, measured side by side in one run (issue 4; BENCHMARKS.md).

1. Supernet forward+backward with one active branch per stage over the same with all four
   active (target <= 0.45): inactive branches must cost nothing.
2. Supernet step (Gumbel sample + forward + backward, alpha gradients included) over the
   derived network (width 1, every edge kept) of the same sampled architecture, forward +
   backward (target <= 1.5): the supernet runs only the sampled op of each edge.
3. Derived network (width 2, genotype derived from random alphas with 2 edges per node; the
   first with all branches on, the others with random scale vectors) inference GFLOP/s over
   HRNet-W32's at 256x192, batch 8 (target >= 0.8).

Usage: ``.venv/bin/python bench/supernet_cost.py [--size 128x96] [--batch 4] [--reps 5]
[--threads N]``.
Times are medians of interleaved repetitions, so drift on a noisy machine hits both sides.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from collections.abc import Callable

import torch

from autopose.config import ModelConfig
from autopose.models.derived import DerivedNetwork, copy_supernet_weights
from autopose.models.flops import count_macs, parse_input_size
from autopose.models.hrnet import hrnet_w32
from autopose.search_space.cells import EdgeChoices
from autopose.search_space.genotype import derive_genotype, genotype_from_choices
from autopose.search_space.supernet import SampledOps, Supernet


def interleaved(fns: dict[str, Callable[[], None]], reps: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved round-robin."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="128x96", help="search input HxW (default 128x96)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--archs", type=int, default=3, help="sampled architectures to average")
    ap.add_argument("--infer-batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (default: torch's choice). 1 is steadier when "
                         "other jobs share the cores: OpenMP threads spin badly when preempted")
    ap.add_argument("--channels-last", action="store_true",
                    help="run measure 3 (both networks) in channels-last memory format")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = random.Random(0)
    hw = parse_input_size(args.size)
    cfg = ModelConfig()
    nb = len(cfg.branch_channels)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device cpu")
    print(f"search input {hw[0]}x{hw[1]}, batch {args.batch}, widths {cfg.branch_channels}, "
          f"{args.reps} interleaved reps, medians; inference memory format "
          f"{'channels-last' if args.channels_last else 'NCHW'}")

    net = Supernet(cfg)
    net.train()
    x = torch.randn(args.batch, 3, *hw)

    def step(vectors: list[list[int]], ops: Callable[[], SampledOps] | None, tau: float = 1.0
             ) -> Callable[[], None]:
        def run() -> None:
            net.zero_grad(set_to_none=True)
            y = net(x, vectors, tau=tau, ops=ops() if ops is not None else None)
            y.float().pow(2).mean().backward()
        return run

    # ---- 1. one active branch per stage vs all active, same ops
    ratios = []
    for a in range(args.archs):
        g = torch.Generator().manual_seed(a)
        ind = torch.randint(len(cfg.ops), (net.alpha_individual.shape[0],), generator=g).tolist()
        agg = torch.randint(len(cfg.ops), (net.alpha_aggregation.shape[0],), generator=g).tolist()

        def ops(ind: list[int] = ind, agg: list[int] = agg) -> SampledOps:
            return SampledOps(EdgeChoices.straight_through(net.alpha_individual, ind),
                              EdgeChoices.straight_through(net.alpha_aggregation, agg))
        fns = {f"one{k}": step([[int(j == k) for j in range(nb)]] * cfg.num_stages, ops)
               for k in range(nb)}
        fns["all"] = step([[1] * nb] * cfg.num_stages, ops)
        t = interleaved(fns, args.reps)
        one = statistics.mean(t[f"one{k}"] for k in range(nb))
        ratios.append(one / t["all"])
        print(f"  ops sample {a}: one branch (mean over the {nb}) {one * 1e3:7.1f} ms, "
              f"all active {t['all'] * 1e3:7.1f} ms, ratio {one / t['all']:.3f}  "
              f"[per branch: " + ", ".join(f"{t[f'one{k}'] * 1e3:.0f}" for k in range(nb)) + " ms]")
    r1 = statistics.mean(ratios)

    # ---- 2. supernet step vs derived network (width 1) of the same sampled architecture
    ratios2 = []
    for a in range(args.archs):
        vectors = [[rng.randint(0, 1) for _ in range(nb)] for _ in range(cfg.num_stages)]
        torch.manual_seed(100 + a)
        state = torch.get_rng_state()
        sampled = net.sample_ops(tau=1.0)
        genotype = genotype_from_choices(cfg, vectors, sampled.individual.indices,
                                         sampled.aggregation.indices, width_mult=1.0)
        derived = DerivedNetwork(genotype, width_mult=1.0)
        copy_supernet_weights(derived, net)
        derived.train()

        def super_step(vectors: list[list[int]] = vectors, state: torch.Tensor = state,
                       expect: list[int] = sampled.individual.indices) -> None:
            # A real search step samples its ops; re-seeding draws `sampled` again each rep.
            torch.set_rng_state(state)
            step(vectors, None)()
            assert net.last_ops is not None and net.last_ops.individual.indices == expect

        def derived_step(derived: DerivedNetwork = derived) -> None:
            derived.zero_grad(set_to_none=True)
            derived(x).float().pow(2).mean().backward()

        t = interleaved({"super": super_step, "derived": derived_step}, args.reps)
        ratios2.append(t["super"] / t["derived"])
        print(f"  arch {a} {''.join(map(str, sum(vectors, [])))}: supernet step "
              f"{t['super'] * 1e3:7.1f} ms, derived fwd+bwd {t['derived'] * 1e3:7.1f} ms, "
              f"ratio {t['super'] / t['derived']:.3f}")
    r2 = statistics.mean(ratios2)

    # ---- 3. derived (width 2) inference GFLOP/s vs HRNet-W32 at 256x192
    ib = args.infer_batch
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    xi = torch.randn(ib, 3, 256, 192).contiguous(memory_format=fmt)
    hr = hrnet_w32().eval().to(memory_format=fmt)
    hr_macs = count_macs(hr, (256, 192))
    ratios3 = []
    for a in range(args.archs):
        # The first with every branch on (the heaviest architecture), the others at random.
        vectors = ([[1] * nb for _ in range(cfg.num_stages)] if a == 0 else
                   [[rng.randint(0, 1) for _ in range(nb)] for _ in range(cfg.num_stages)])
        gen = torch.Generator().manual_seed(200 + a)
        genotype = derive_genotype(torch.randn(net.alpha_individual.shape, generator=gen),
                                   torch.randn(net.alpha_aggregation.shape, generator=gen),
                                   cfg, vectors)
        d2 = DerivedNetwork(genotype, width_mult=2.0).eval().to(memory_format=fmt)
        d_macs = count_macs(d2, (256, 192))

        def infer(m: torch.nn.Module) -> Callable[[], None]:
            def run() -> None:
                with torch.inference_mode():
                    m(xi)
            return run
        t = interleaved({"derived": infer(d2), "hrnet": infer(hr)}, max(3, args.reps // 2))
        d_rate = d_macs * ib / t["derived"] / 1e9
        h_rate = hr_macs * ib / t["hrnet"] / 1e9
        ratios3.append(d_rate / h_rate)
        print(f"  genotype {a} {''.join(map(str, sum(vectors, [])))} "
              f"(ops {', '.join(sorted({op for _, _, op in genotype.individual.edges}))}): "
              f"derived {d_macs / 1e9:.2f} GMAC/img {t['derived'] * 1e3:.0f} ms "
              f"= {d_rate:.1f} GMAC/s; HRNet-W32 {hr_macs / 1e9:.2f} GMAC/img "
              f"{t['hrnet'] * 1e3:.0f} ms = {h_rate:.1f} GMAC/s; ratio {d_rate / h_rate:.3f}")
    r3 = statistics.mean(ratios3)

    print()
    print(f"{'measure':58s} {'value':>7s} {'target':>8s}  verdict")
    for name, v, target, ok in (
            ("supernet fwd+bwd, one branch/stage over all active", r1, "<= 0.45", r1 <= 0.45),
            ("supernet step over derived net (width 1), same arch", r2, "<= 1.5", r2 <= 1.5),
            ("derived (width 2) GFLOP/s over HRNet-W32, 256x192 b8", r3, ">= 0.8", r3 >= 0.8)):
        print(f"{name:58s} {v:7.3f} {target:>8s}  {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
