"""The network-level RNN controller (paper section 3.2) and its REINFORCE update.

An LSTM emits, for each stage, the scale vector: one Bernoulli bit per branch ("is this
scale active in this stage?"), each conditioned on every earlier decision through the
recurrent state. For the single-branch ablation it emits instead one categorical choice per
stage among "no branch" and each single branch. Logits pass through ENAS' squashing,
``tanh_constant * tanh(logit / temperature)``, which keeps early exploration wide.

``Reinforce`` trains it (SPEC section 3, "Network level"): every reward of one update is
scored on the same supernet weights, so the batch's own mean is the baseline and advantages
are normalised by the batch's spread; an entropy bonus and a KL term toward a prior (NNI
ENAS' skip penalty) keep the policy from collapsing on reward noise.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from autopose.config import ControllerConfig


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the controller's tiny (hidden-100) ops on one thread: splitting them across
    threads only adds synchronisation, and under load it made updates ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class PolicySample:
    """One architecture drawn from the policy.

    ``scale_vectors`` ``(S, B)`` bool; ``log_prob``, ``entropy`` and ``kl`` are scalars that
    carry the graph back to the controller's parameters. ``entropy`` and ``kl`` are sums
    over the decisions along this sample's path: each decision's entropy, and its KL
    divergence from the prior (Bernoulli(``on_target``) per bit; uniform over the choices in
    the single-branch variant). The mean of ``entropy`` over samples estimates the joint
    policy's entropy. ``Controller.evaluate_batch`` returns a batch: ``(N, S, B)`` and
    ``(N,)`` tensors.
    """

    scale_vectors: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor
    kl: torch.Tensor

    def as_lists(self) -> list[list[int]]:
        return [[int(b) for b in row] for row in self.scale_vectors.tolist()]


class Controller(nn.Module):
    """LSTM policy over scale vectors: ``S`` stages x ``B`` branches."""

    def __init__(self, num_stages: int, num_branches: int, cfg: ControllerConfig,
                 single_branch: bool = False):
        super().__init__()
        self.num_stages, self.num_branches = num_stages, num_branches
        self.single_branch = single_branch
        self.tanh_constant, self.temperature = cfg.tanh_constant, cfg.temperature
        if not 0.0 < cfg.on_target < 1.0:
            raise ValueError(f"controller.on_target must lie in (0, 1), got {cfg.on_target}")
        self.on_target = cfg.on_target
        h = cfg.hidden
        self.start = nn.Parameter(torch.zeros(1, h))
        self.lstm = nn.LSTMCell(h, h)
        # One output head per decision, one embedding per (decision, outcome) fed back in.
        choices = num_branches + 1 if single_branch else 2
        decisions = num_stages if single_branch else num_stages * num_branches
        self.heads = nn.ModuleList(nn.Linear(h, choices if single_branch else 1)
                                   for _ in range(decisions))
        self.outcome_embedding = nn.Embedding(decisions * choices, h)
        self.choices = choices
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def _logits(self, hx: torch.Tensor, d: int) -> torch.Tensor:
        """Squashed logits ``(N, choices)`` (``(N, 1)`` for a Bernoulli bit) of decision ``d``."""
        raw = self.heads[d](hx) / self.temperature
        return self.tanh_constant * torch.tanh(raw)

    def _run(self, forced: torch.Tensor | None, greedy: bool,
             generator: torch.Generator | None) -> PolicySample:
        """Decide decision by decision, for one architecture or a batch.

        ``forced``: ``(N, S, B)`` bool scale vectors to score (teacher forcing, all ``N`` in
        one pass); None samples (or, ``greedy``, decodes) one. Returns a batched
        ``PolicySample``: ``scale_vectors`` ``(N, S, B)``, the others ``(N,)``.
        """
        n = 1 if forced is None else forced.shape[0]
        state = None
        x = self.start.expand(n, -1)
        zero = torch.zeros(n)
        log_prob, entropy, kl = zero, zero, zero
        log_on, log_off = math.log(self.on_target), math.log(1.0 - self.on_target)
        out = torch.zeros(n, self.num_stages, self.num_branches, dtype=torch.bool)
        for d in range(len(self.heads)):
            hx, cx = self.lstm(x, state)
            state = (hx, cx)
            logits = self._logits(hx, d)
            if self.single_branch:
                # Outcome 0: no branch in stage d; outcome k: branch k - 1 alone.
                logp = logits.log_softmax(-1)
                if forced is not None:
                    row = forced[:, d]
                    value = torch.where(row.any(1), row.long().argmax(1) + 1, 0)
                elif greedy:
                    value = logits.argmax(-1)
                else:
                    value = torch.multinomial(logp.exp().detach(), 1, generator=generator)[:, 0]
                out[:, d] = F.one_hot(value, self.choices)[:, 1:].bool()
                ent = -(logp.exp() * logp).sum(-1)
                log_prob = log_prob + logp.gather(1, value[:, None])[:, 0]
                kl = kl + (math.log(self.choices) - ent)  # KL(p || uniform) = log K - H(p)
            else:
                lp_on, lp_off = F.logsigmoid(logits[:, 0]), F.logsigmoid(-logits[:, 0])
                p_on, p_off = lp_on.exp(), lp_off.exp()
                stage, branch = divmod(d, self.num_branches)
                if forced is not None:
                    value = forced[:, stage, branch].long()
                elif greedy:
                    value = (logits[:, 0] > 0).long()
                else:
                    value = torch.bernoulli(p_on.detach(), generator=generator).long()
                out[:, stage, branch] = value.bool()
                ent = -(p_on * lp_on + p_off * lp_off)
                log_prob = log_prob + torch.where(value.bool(), lp_on, lp_off)
                # KL(Bernoulli(p) || Bernoulli(on_target)), in log space.
                kl = kl + p_on * (lp_on - log_on) + p_off * (lp_off - log_off)
            entropy = entropy + ent
            x = self.outcome_embedding(d * self.choices + value)
        return PolicySample(out, log_prob, entropy, kl)

    @staticmethod
    def _one(batch: PolicySample) -> PolicySample:
        return PolicySample(batch.scale_vectors[0], batch.log_prob[0], batch.entropy[0],
                            batch.kl[0])

    def sample(self, generator: torch.Generator | None = None) -> PolicySample:
        """Draw scale vectors from the policy."""
        with _one_thread():
            return self._one(self._run(None, greedy=False, generator=generator))

    def most_likely(self) -> PolicySample:
        """The greedy decode: each decision takes its most probable outcome."""
        with _one_thread():
            return self._one(self._run(None, greedy=True, generator=None))

    def evaluate(self, scale_vectors: torch.Tensor) -> PolicySample:
        """Log-probability, entropy and KL of given scale vectors ``(S, B)`` under the policy."""
        with _one_thread():
            return self._one(self._run(scale_vectors.bool()[None], greedy=False, generator=None))

    def evaluate_batch(self, scale_vectors: torch.Tensor) -> PolicySample:
        """``evaluate`` for ``(N, S, B)`` scale vectors in one pass: a ``PolicySample`` whose
        ``scale_vectors`` are ``(N, S, B)`` and ``log_prob``, ``entropy``, ``kl`` ``(N,)``."""
        with _one_thread():
            return self._run(scale_vectors.bool(), greedy=False, generator=None)


class Reinforce:
    """REINFORCE with the batch mean as baseline, normalised advantages, an entropy bonus and
    a KL pull toward the prior (SPEC section 3, "Network level").

    The loss of one update over ``N`` (architecture, reward) pairs is the batch mean of
    ``-A_i log p(a_i) - entropy_weight H_i + kl_weight KL_i`` with
    ``A_i = (r_i - mean(r)) / (std(r) + eps)``.
    """

    # Keeps a batch of identical rewards (std 0, e.g. every AP 0 early in a search) from
    # dividing by zero: its advantages are then 0. Any spread above it is scaled to 1, so a
    # gap of 1e-5 moves the policy as far as one of 1e-2; the KL guard, not eps, is what
    # keeps such near-ties from steering it (tests/search/test_controller.py, noise tests).
    eps = 1e-8

    def __init__(self, controller: Controller, cfg: ControllerConfig):
        self.controller = controller
        self.cfg = cfg
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=cfg.lr)
        # The last batch's mean reward, for logging (nothing reads it back into the update).
        self.baseline: float | None = None

    def update(self, scale_vectors: list[torch.Tensor], rewards: list[float]) -> dict[str, float]:
        """One policy-gradient step from a batch of (architecture, reward) pairs.

        ``scale_vectors``: ``N`` bool tensors ``(S, B)``, as sampled from the controller;
        ``rewards``: their ``N`` rewards, all scored on the same supernet weights. The batch
        is its own baseline: a moving average lags a reward that rises as the supernet
        trains (measured: 67 of 80 advantages positive), which reinforced whatever was
        sampled. Returns loss, mean reward (= ``baseline``), reward std, and the batch's mean
        sample entropy and KL (nats).
        """
        if len(scale_vectors) != len(rewards) or not rewards:
            raise ValueError(f"update needs one reward per architecture, got "
                             f"{len(scale_vectors)} architectures and {len(rewards)} rewards")
        r = torch.tensor(rewards, dtype=torch.float64)
        mean = float(r.mean())
        # Population std: one architecture (or N identical rewards) gives advantages of 0.
        std = float(r.std(correction=0))
        advantages = ((r - mean) / (std + self.eps)).float()
        self.baseline = mean
        scored = self.controller.evaluate_batch(torch.stack([sv.bool() for sv in scale_vectors]))
        loss = (-advantages * scored.log_prob - self.cfg.entropy_weight * scored.entropy
                + self.cfg.kl_weight * scored.kl).mean()
        with _one_thread():
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return {"loss": float(loss.detach()), "reward": mean, "reward_std": std,
                "baseline": mean, "entropy": float(scored.entropy.detach().mean()),
                "kl": float(scored.kl.detach().mean())}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state.get("baseline")


def policy_entropy(controller: Controller) -> float:
    """Entropy of the policy along its most likely path (sum over decisions, nats)."""
    with torch.no_grad():
        return float(controller.evaluate(controller.most_likely().scale_vectors).entropy)
