"""The bi-level search (paper section 3.2): cells by gradient, branches by reinforcement.

Every iteration samples the network-level architecture (scale vectors), then takes one weight
step on the weight half of the training set with a hard Gumbel-softmax sample of the cell ops
(one op per edge: a step costs about what the sampled sub-network costs), and every
``search.alpha_every`` iterations one alpha step on the arch half through the continuous
relaxation (paper eq. 4: every op runs, weighted by a soft Gumbel-softmax sample), at an
annealed temperature.

The supernet first trains on uniformly sampled scale vectors (the warm-up). Once it has learnt,
measured as its weight loss over a period falling below ``search.warmup_loss_ratio`` times
the loss of an all-zero heatmap on the same batches, the end of each period updates the
controller M times by REINFORCE, each update on N architectures rewarded by the OKS AP (or
mean OKS) of the network derivation would build for them, with the shared weights, on a
held-out slice. ``--strategy random`` keeps the budget and the evaluation and replaces both
learners by uniform sampling; it re-scores its whole pool on the final weights before it picks.

``BilevelSearch`` owns the loop and the search state; what differs between the strategies
(what a step samples, what the end of a period learns, what derivation picks from) is asked of
its ``Strategy`` (``search/strategies.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from autopose.config import Config, dump_config
from autopose.data.loader import iterate, make_loader
from autopose.data.sources import resolve_data
from autopose.data.transforms import normalize_batch
from autopose.engine import distributed as ddp
from autopose.engine import optim
from autopose.engine.loss import joints_mse_loss
from autopose.errors import UserError
from autopose.models.derived import (DerivedNetwork, SupernetTensors, copy_supernet_weights,
                                     supernet_tensors)
from autopose.models.flops import count_macs
from autopose.search import architectures as archs
from autopose.search.candidates import Candidate, arch_key
from autopose.search.checkpoint import save_search_checkpoint
from autopose.search.controller import Controller, Reinforce
from autopose.search.data import build_search_data
from autopose.search.reward import RewardEvaluator
from autopose.search.strategies import Strategy, check_strategy, make_strategy
from autopose.search_space.genotype import Genotype, derive_genotype
from autopose.search_space.ops import OPS
from autopose.search_space.supernet import SampledOps, Supernet


@dataclass
class SearchState:
    """Everything a resumed search needs besides the module weights and optimisers."""

    epoch: int = 0
    iteration: int = 0  # next iteration within ``epoch``
    log: list[dict[str, Any]] = field(default_factory=list)
    pool: list[dict[str, Any]] = field(default_factory=list)  # random search: evaluated candidates
    # The current epoch's losses and architectures so far, for a mid-epoch checkpoint.
    partial: dict[str, list] = field(default_factory=dict)
    # The period whose end saw the controller's first update (the warm-up's end); None
    # while the supernet is still warming up.
    controller_start: int | None = None


def alpha_entropy(alpha: torch.Tensor | None) -> float | None:
    """Mean over edges of the entropy (nats) of the op distribution softmax(alpha)."""
    if alpha is None:
        return None
    p = torch.softmax(alpha.detach().float(), dim=-1)
    return float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())


class BilevelSearch:
    """One search run in ``out``: build, (resume,) run, derive. The ``strategy`` decides
    what the loop samples, learns and derives from (``search/strategies.py``)."""

    def __init__(self, cfg: Config, out: Path, strategy: str = "autopose",
                 dist_info: ddp.DistInfo | None = None, progress: bool = True):
        check_strategy(strategy)
        if cfg.search.threads > 0:
            torch.set_num_threads(cfg.search.threads)
        self.cfg = resolve_data(cfg)
        self.out = Path(out)
        self.strategy_name = strategy  # the --strategy value, recorded in the checkpoint
        # Under torchrun every rank runs this same search on its share of each batch:
        # gradients are averaged, rank 0's architecture choices are broadcast, and rewards
        # are scored on every rank's predictions together, so all ranks stay identical.
        self.dist = dist_info or ddp.DistInfo(0, 1, 0, ddp.default_device())
        self.device = self.dist.device
        self.progress = progress and self.dist.is_main
        # Capped at this process's share of the cores: under torchrun on a CPU, two
        # processes with two reward threads each on 2 cores made every reward pass wait on
        # preempted, spinning threads (a tiny two-process search: 63-98 s, capped 13 s).
        self.reward_threads = min(cfg.search.reward_threads, ddp.cpu_share(self.dist))

        cfg, s, m = self.cfg, self.cfg.search, self.cfg.model
        # Seeded before anything is built: the supernet's and the controller's
        # initialisation, below in this order, draw from the global RNG.
        torch.manual_seed(cfg.seed)
        data = build_search_data(cfg, self.out, self.dist)
        self.info = data.info
        self.weight_set, self.arch_set = data.weight_set, data.arch_set
        self.weight_sampler, self.arch_sampler = data.weight_sampler, data.arch_sampler
        self.iters_per_epoch = data.iters_per_epoch
        self.reward = RewardEvaluator(data.reward_set, data.reward_cfg, self.device,
                                      self.dist.rank, self.dist.world_size)

        self.supernet = Supernet(m, self.info.num_joints).to(self.device)
        if s.channels_last:
            self.supernet.to(memory_format=torch.channels_last)
        self.w_opt = optim.adam(self.supernet.weight_parameters(), s.weight_lr)
        self.op_cost = op_costs(self.supernet.ops).to(self.device)
        # Taken once: optimiser steps, load_state_dict and the buffer broadcasts all update
        # these tensors in place.
        self._supernet_tensors: SupernetTensors = supernet_tensors(self.supernet)
        # Cleared by hand each step: Module.zero_grad walks every module of the supernet
        # (about 10 % of a weight step on a 2-core CPU).
        self._parameters = list(self.supernet.parameters())
        self.a_opt = optim.adam(self.supernet.arch_parameters(), s.alpha_lr,
                                tuple(s.alpha_betas), s.alpha_weight_decay)
        # Built (and checkpointed) whatever the strategy: its initialisation draws from the
        # global RNG, which every later draw follows.
        self.controller = Controller(m.num_stages, len(m.branch_channels), s.controller,
                                     single_branch=s.single_branch)
        self.rl = Reinforce(self.controller, s.controller)
        self.arch_gen = torch.Generator().manual_seed(cfg.seed)
        self.space = archs.BranchSpace(m.num_stages, len(m.branch_channels), s.single_branch,
                                       fixed=s.branches == "all")
        self.state = SearchState()
        self.strategy: Strategy = make_strategy(strategy, self)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": dump_config(self.cfg), "strategy": self.strategy_name,
            "supernet": self.supernet.state_dict(), "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(), "controller": self.controller.state_dict(),
            "rl": self.rl.state_dict(), "arch_gen": self.arch_gen.get_state(),
            "torch_rng": torch.get_rng_state(), "epoch": self.state.epoch,
            "iteration": self.state.iteration, "log": self.state.log, "pool": self.state.pool,
            "partial": self.state.partial, "world_size": self.dist.world_size,
            "controller_start": self.state.controller_start,
        }

    def load_state_dict(self, ckpt: dict[str, Any], source: Path) -> None:
        if (ckpt.get("config") != dump_config(self.cfg)
                or ckpt.get("strategy") != self.strategy_name):
            raise UserError(f"{source}: --resume: the checkpoint was made with another config or "
                            "strategy (compare its config.yaml)")
        saved = ckpt.get("world_size")  # absent in checkpoints written before it was recorded
        if saved is not None and saved != self.dist.world_size:
            # search.batch_size is per process: the data order of a period depends on the count.
            raise UserError(f"{source}: --resume: the checkpoint was written by {saved} "
                            f"process(es), this run has {self.dist.world_size}; resume with "
                            f"the same number (torchrun --nproc_per_node={saved})")
        self.supernet.load_state_dict(ckpt["supernet"])
        self.w_opt.load_state_dict(ckpt["w_opt"])
        self.a_opt.load_state_dict(ckpt["a_opt"])
        self.controller.load_state_dict(ckpt["controller"])
        self.rl.load_state_dict(ckpt["rl"])
        self.arch_gen.set_state(ckpt["arch_gen"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.state = SearchState(ckpt["epoch"], ckpt["iteration"], ckpt["log"], ckpt["pool"],
                                 ckpt["partial"], ckpt.get("controller_start"))

    def checkpoint(self) -> None:
        # Running BN statistics are each rank's own; the checkpoint holds rank 0's.
        ddp.broadcast_buffers(self.supernet)
        if self.dist.is_main:
            save_search_checkpoint(self.out, self.state_dict(),
                                   {"epoch": self.state.epoch, "iteration": self.state.iteration})
        ddp.barrier()

    def resume(self, ckpt: dict[str, Any]) -> None:
        """Continue from ``ckpt``, the run folder's checkpoint (read and checked to be a
        search's by ``search.checkpoint.load_search_checkpoint`` before the search was built)."""
        self.load_state_dict(ckpt, self.out / "checkpoint.pt")

    # ------------------------------------------------------------------ architectures

    def warm_up_over(self, epoch: int, loss_ratio: float) -> bool:
        """The end of the warm-up, decided at the end of period ``epoch``: not before
        ``controller.start_epoch``; then once the period's weight loss is below
        ``search.warmup_loss_ratio`` times the all-zero-heatmap loss (the supernet predicts
        better than nothing); at the latest after ``search.warmup_max_fraction`` of the
        periods."""
        s = self.cfg.search
        first = s.controller.start_epoch
        if epoch < first:
            return False
        latest = max(first, math.ceil(s.warmup_max_fraction * s.epochs) - 1)
        return loss_ratio < s.warmup_loss_ratio or epoch >= latest

    def sample_scale_vectors(self, epoch: int) -> torch.Tensor:
        """The network-level architecture of one weight/alpha iteration (rank 0's)."""
        return ddp.broadcast_object(self.strategy.sample(epoch))

    def most_likely(self) -> Candidate:
        """The strategy's most likely architecture now, with the current cells."""
        return self.strategy.most_likely()

    def current(self, scale_vectors: torch.Tensor) -> Candidate:
        """``scale_vectors`` ``(S, B)`` with the searched cells (the current alphas)."""
        agg = self.supernet.alpha_aggregation
        return Candidate(scale_vectors, self.supernet.alpha_individual.detach().cpu().clone(),
                         None if agg is None else agg.detach().cpu().clone())

    def _random_candidate(self) -> Candidate:
        """Uniform over the whole space: scale vectors and (through random alphas) cells."""
        sv = self.space.uniform(self.arch_gen)
        ind = torch.rand(self.supernet.alpha_individual.shape, generator=self.arch_gen)
        agg = self.supernet.alpha_aggregation
        agg = None if agg is None else torch.rand(agg.shape, generator=self.arch_gen)
        return Candidate(sv, ind, agg)

    def genotype(self, cand: Candidate) -> Genotype:
        """The genotype derivation builds for ``cand`` (argmax ops, the edge rule of
        ``model.edges_per_node``)."""
        return derive_genotype(cand.alpha_individual, cand.alpha_aggregation, self.cfg.model,
                               cand.scale_vectors.int().tolist())

    def subnetwork(self, genotype: Genotype) -> DerivedNetwork:
        """The derived network of ``genotype`` at the supernet's widths, with its shared
        weights: what the reward scores is exactly what derivation would build."""
        net = DerivedNetwork(genotype, width_mult=1.0,
                             num_joints=self.info.num_joints).to(self.device)
        copy_supernet_weights(net, self.supernet, self._supernet_tensors)
        if self.cfg.search.channels_last:
            net.to(memory_format=torch.channels_last)
        return net

    def evaluate(self, cand: Candidate) -> float:
        """Score ``cand`` on the reward set with the current shared weights."""
        cand.reward = self.evaluate_genotype(self.genotype(cand))
        return cand.reward

    def evaluate_genotype(self, genotype: Genotype) -> float:
        """The reward of any genotype of this search space with the current shared weights."""
        threads = self.reward_threads
        before = torch.get_num_threads()
        if threads > 0:
            torch.set_num_threads(threads)
        try:
            return self.reward(self.subnetwork(genotype))
        finally:
            torch.set_num_threads(before)

    def evaluate_cached(self, cand: Candidate, cache: dict[Any, float]) -> float:
        """``evaluate`` once per distinct architecture while the weights do not change."""
        k = arch_key(cand)
        if k not in cache:
            cache[k] = self.evaluate(cand)
        cand.reward = cache[k]
        return cand.reward

    # ------------------------------------------------------------------ the loop

    def _progress(self, epoch: int, iteration: int) -> float:
        """How far through the search's iterations ``(epoch, iteration)`` is: 0 to 1."""
        total = max(1, self.cfg.search.epochs * self.iters_per_epoch - 1)
        return min(1.0, (epoch * self.iters_per_epoch + iteration) / total)

    def tau(self, epoch: int, iteration: int) -> float:
        s = self.cfg.search
        return s.tau_start + (s.tau_end - s.tau_start) * self._progress(epoch, iteration)

    def alpha_lr(self, epoch: int, iteration: int) -> float:
        s = self.cfg.search
        if s.alpha_lr_schedule == "constant":
            return s.alpha_lr
        return 0.5 * s.alpha_lr * (1 + math.cos(math.pi * self._progress(epoch, iteration)))

    def _step(self, batch: dict[str, Any], sv: list[list[int]], tau: float,
              optimizer: torch.optim.Optimizer, relaxed: bool = False) -> tuple[float, float]:
        """One step of ``optimizer`` on ``batch``: hard op sample (weights) or the relaxation
        (alphas). Returns the loss and the loss an all-zero heatmap would have on the batch."""
        images = normalize_batch(batch["image"].to(self.device), self.cfg.search.channels_last)
        ops = self.supernet.relax_ops(tau) if relaxed else self.supernet.sample_ops(tau)
        pred = self.supernet(images, sv, ops=ops)
        target = batch["target"].to(self.device)
        target_weight = batch["target_weight"].to(self.device)
        loss = joints_mse_loss(pred, target, target_weight)
        zero = joints_mse_loss(torch.zeros_like(target), target, target_weight)
        objective = (alpha_objective(loss, ops, self.op_cost, self.cfg.search.alpha_cost_weight)
                     if relaxed else loss)
        for p in self._parameters:
            p.grad = None
        objective.backward()
        losses = torch.stack([loss.detach(), zero])
        if self.dist.distributed:
            # Every rank ran the same sub-network (same architecture, same Gumbel draws), so
            # the same parameters have gradients, in the same order on every rank; the losses
            # travel in the same buckets (their means are what the log shows).
            grads = [p.grad for p in self.supernet.parameters() if p.grad is not None]
            ddp.all_reduce_mean_(grads + [losses])
        optimizer.step()
        loss_value, zero_value = losses.tolist()
        return loss_value, zero_value

    def _loaders(self, epoch: int, start_iteration: int):
        bs = self.cfg.search.batch_size
        self.weight_set.set_epoch(epoch)
        self.arch_set.set_epoch(epoch)
        self.weight_sampler.set_position(epoch, start_iteration * bs)
        self.arch_sampler.set_position(epoch, start_iteration * bs)
        workers = self.cfg.data.workers
        # Own generators: creating a loader iterator must not draw from the global RNG,
        # whose state the checkpoint restores.
        wl = make_loader(self.weight_set, bs, workers, sampler=self.weight_sampler,
                         drop_last=True, generator=torch.Generator().manual_seed(epoch))
        al = make_loader(self.arch_set, bs, workers, sampler=self.arch_sampler,
                         drop_last=True, generator=torch.Generator().manual_seed(epoch))
        return iterate(wl), iterate(al)

    def run_epoch(self, epoch: int, writer) -> dict[str, Any]:
        """Period ``epoch`` from ``state.iteration`` on: the weight (and alpha) steps, the
        warm-up criterion, then ``end_of_epoch``; returns the period's log entry. ``writer``
        (a TensorBoard ``SummaryWriter`` or None) gets the per-iteration scalars."""
        s = self.cfg.search
        t0 = time.time()
        self.supernet.train()
        start = self.state.iteration
        w_iter, a_iter = self._loaders(epoch, start)
        part = self.state.partial if start > 0 else {}
        w_losses: list[float] = list(part.get("w", []))
        z_losses: list[float] = list(part.get("z", []))
        a_losses: list[float] = list(part.get("a", []))
        sampled: list = list(part.get("sampled", []))
        bar = tqdm(range(start, self.iters_per_epoch), desc=f"search {epoch + 1}/{s.epochs}",
                   disable=not self.progress, leave=False)
        for it in bar:
            wb, ab = next(w_iter), next(a_iter)
            sv_t = self.sample_scale_vectors(epoch)
            sv = sv_t.int().tolist()
            sampled.append(sv)
            tau = self.tau(epoch, it)
            loss, zero = self._step(wb, sv, tau, self.w_opt)
            w_losses.append(loss)
            z_losses.append(zero)
            step = epoch * self.iters_per_epoch + it
            # The alpha step on every alpha_every-th iteration of the whole search.
            if self.strategy.alpha_step and step % s.alpha_every == 0:
                for group in self.a_opt.param_groups:
                    group["lr"] = self.alpha_lr(epoch, it)
                a_losses.append(self._step(ab, sv, tau, self.a_opt, relaxed=True)[0])
            bar.set_postfix(loss=f"{w_losses[-1]:.2e}", tau=f"{tau:.2f}")
            self.state.iteration = it + 1
            if writer is not None:
                writer.add_scalar("search/weight_loss", w_losses[-1], step)
                writer.add_scalar("search/tau", tau, step)
            if s.checkpoint_every and (it + 1) % s.checkpoint_every == 0 \
                    and it + 1 < self.iters_per_epoch:
                self.state.partial = {"w": list(w_losses), "z": list(z_losses),
                                      "a": list(a_losses), "sampled": list(sampled)}
                self.checkpoint()
        weight_loss = sum(w_losses) / max(1, len(w_losses))
        zero_loss = sum(z_losses) / max(1, len(z_losses))
        loss_ratio = weight_loss / zero_loss if zero_loss > 0 else float("inf")
        if self.state.controller_start is None and self.warm_up_over(epoch, loss_ratio):
            self.state.controller_start = epoch
        t_reward = time.time()
        end = self.end_of_epoch(epoch)
        reward_seconds = time.time() - t_reward
        self.state.partial = {}
        previous = self.state.log[-1] if self.state.log else None
        argmax = {k: None if a is None else a.detach().argmax(-1).tolist()
                  for k, a in (("individual", self.supernet.alpha_individual),
                               ("aggregation", self.supernet.alpha_aggregation))}
        entry = {
            "epoch": epoch,
            "weight_loss": weight_loss,
            # The loss of an all-zero heatmap on the same batches, and the ratio the warm-up
            # criterion reads: below 1 the supernet predicts better than nothing.
            "zero_heatmap_loss": zero_loss,
            "loss_ratio": loss_ratio,
            "controller_start": self.state.controller_start,
            "alpha_loss": sum(a_losses) / max(1, len(a_losses)) if a_losses else None,
            "alpha_steps": len(a_losses),
            "tau": self.tau(epoch, self.iters_per_epoch - 1),
            "alpha_entropy_individual": alpha_entropy(self.supernet.alpha_individual),
            "alpha_entropy_aggregation": alpha_entropy(self.supernet.alpha_aggregation),
            "argmax_individual": argmax["individual"],
            "argmax_aggregation": argmax["aggregation"],
            "argmax_agreement": None if previous is None else argmax_agreement(previous, argmax),
            # Per stage and branch, the share of this period's weight steps that trained it.
            "branch_share": torch.tensor(sampled, dtype=torch.float64).mean(0).tolist()
            if sampled else None,
            "sampled_architectures": sampled,
            "seconds": round(time.time() - t0, 2),
            # Of which the end of the period: the strategy's rewards and updates.
            "reward_seconds": round(reward_seconds, 2),
        } | end
        return entry

    def end_of_epoch(self, epoch: int) -> dict[str, Any]:
        """The strategy's learning at the end of the period (controller updates, or the same
        number of random evaluations), then the reward of the most likely architecture;
        every reward on this period's weights."""
        cache: dict[Any, float] = {}  # the weights do not change here: same network, same reward
        out = self.strategy.end_of_period(epoch, cache)
        best = self.strategy.most_likely()
        out["policy_entropy"] = self.strategy.policy_entropy()
        out["most_likely"] = best.scale_vectors.int().tolist()
        out["most_likely_reward"] = (self.evaluate_cached(best, cache)
                                     if self.strategy.rewards_most_likely(epoch) else None)
        out["distinct_evaluations"] = len(cache)
        return out

    def run(self, writer=None, on_epoch: Callable[[dict[str, Any]], None] | None = None
            ) -> tuple[Genotype, list[dict[str, Any]]]:
        """Every period from ``state.epoch`` on, each ended by a checkpoint, then ``derive``.
        ``on_epoch`` sees each period's log entry once it is checkpointed (on every rank)."""
        for epoch in range(self.state.epoch, self.cfg.search.epochs):
            entry = self.run_epoch(epoch, writer)
            self.state.log.append(entry)
            self.state.epoch, self.state.iteration = epoch + 1, 0
            self.checkpoint()
            if on_epoch is not None:
                on_epoch(entry)
        return self.derive()

    def derive(self) -> tuple[Genotype, list[dict[str, Any]]]:
        """The final architecture: the best, on the final weights, of the strategy's
        candidates (AutoPose: the most likely and N samples; random search: N fresh ones and
        its whole pool, scored again). Returns it and the table of distinct candidates."""
        cands = self.strategy.derive_candidates()
        cache: dict[Any, float] = {}
        for c in cands:
            self.evaluate_cached(c, cache)
        # Distinct candidates, in order (dicts keep the first of equal keys).
        seen: dict[Any, Candidate] = {}
        for c in cands:
            seen.setdefault(arch_key(c), c)
        pool = list(seen.values())
        best = max(pool, key=lambda c: c.reward)
        table = [{"scale_vectors": c.scale_vectors.int().tolist(), "reward": c.reward}
                 for c in pool]
        return self.genotype(best), table


def argmax_agreement(previous: dict[str, Any], argmax: dict[str, list[int] | None]) -> float:
    """Share of edges (both cell kinds together) whose argmax op is the same as in the
    ``previous`` log entry."""
    same = total = 0
    for kind, now in argmax.items():
        before = previous.get(f"argmax_{kind}")
        if now is None or before is None:
            continue
        same += sum(a == b for a, b in zip(before, now))
        total += len(now)
    return same / total if total else 1.0


def op_costs(ops: list[str], channels: int = 16) -> torch.Tensor:
    """``(O,)``: each candidate op's multiply-accumulates on a ``channels``-channel map,
    relative to the costliest op's (every op keeps its input's shape, so the ratio does not
    depend on the channels or the map size; pooling and skip count 0, as in the GFLOPs)."""
    # On the meta device: shapes only, and building the ops draws nothing from the RNG.
    with torch.device("meta"):
        x = torch.zeros(1, channels, 8, 8)
        macs = [count_macs(OPS[name](channels, False), (8, 8), forward=lambda m, _: m(x))
                for name in ops]
    top = max(macs)
    return torch.tensor([m / top if top else 0.0 for m in macs])


def expected_cost(ops: SampledOps, cost: torch.Tensor) -> torch.Tensor:
    """Scalar: the relative cost (``op_costs``) of the relaxed cells, averaged over each cell
    kind's edges, then over the kinds; differentiable in the alphas through the weights."""
    kinds = [c for c in (ops.individual, ops.aggregation) if c is not None]
    return torch.stack([(c.weights @ cost).mean() for c in kinds]).mean()


def alpha_objective(loss: torch.Tensor, ops: SampledOps, cost: torch.Tensor,
                    weight: float) -> torch.Tensor:
    """What the alpha step minimises: ``loss x (1 + weight x expected_cost)``. FBNet-style and
    multiplicative, so scale-free: an all-costliest-op cell is worth (1 + weight) times the
    loss. ``weight`` 0 is the paper's objective, the loss itself."""
    if weight <= 0:
        return loss
    return loss * (1 + weight * expected_cost(ops, cost))
