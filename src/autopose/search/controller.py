"""The network-level RNN controller (paper section 3.2) and its REINFORCE update.

An LSTM emits, for each stage, the scale vector: one Bernoulli bit per branch ("is this
scale active in this stage?"), each conditioned on every earlier decision through the
recurrent state. For the single-branch ablation it emits instead one categorical choice per
stage among "no branch" and each single branch. Logits pass through ENAS' squashing,
``tanh_constant * tanh(logit / temperature)``, which keeps early exploration wide.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

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

    ``scale_vectors`` ``(S, B)`` bool; ``log_prob`` and ``entropy`` are scalars that carry
    the graph back to the controller's parameters.
    """

    scale_vectors: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor

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
        raw = self.heads[d](hx)[0] / self.temperature
        return self.tanh_constant * torch.tanh(raw)

    def _run(self, forced: torch.Tensor | None, greedy: bool,
             generator: torch.Generator | None) -> PolicySample:
        """Sample (or score ``forced``, an ``(S, B)`` bool tensor) decision by decision."""
        state = None
        x = self.start
        log_probs, entropies = [], []
        out = torch.zeros(self.num_stages, self.num_branches, dtype=torch.bool)
        decisions = len(self.heads)
        for d in range(decisions):
            hx, cx = self.lstm(x, state)
            state = (hx, cx)
            logits = self._logits(hx, d)
            if self.single_branch:
                dist = torch.distributions.Categorical(logits=logits)
                if forced is not None:
                    row = forced[d]
                    value = int(row.nonzero()[0, 0]) + 1 if row.any() else 0
                elif greedy:
                    value = int(logits.argmax())
                else:
                    value = int(torch.multinomial(dist.probs, 1, generator=generator))
                if value > 0:
                    out[d, value - 1] = True
            else:
                dist = torch.distributions.Bernoulli(logits=logits[0])
                stage, branch = divmod(d, self.num_branches)
                if forced is not None:
                    value = int(forced[stage, branch])
                elif greedy:
                    value = int(logits[0] > 0)
                else:
                    value = int(torch.bernoulli(dist.probs.detach(), generator=generator))
                out[stage, branch] = bool(value)
            log_probs.append(dist.log_prob(torch.tensor(float(value) if not self.single_branch
                                                        else value)))
            entropies.append(dist.entropy())
            x = self.outcome_embedding(torch.tensor([d * self.choices + value]))
        return PolicySample(out, torch.stack(log_probs).sum(), torch.stack(entropies).sum())

    def sample(self, generator: torch.Generator | None = None) -> PolicySample:
        """Draw scale vectors from the policy."""
        with _one_thread():
            return self._run(None, greedy=False, generator=generator)

    def most_likely(self) -> PolicySample:
        """The greedy decode: each decision takes its most probable outcome."""
        with _one_thread():
            return self._run(None, greedy=True, generator=None)

    def evaluate(self, scale_vectors: torch.Tensor) -> PolicySample:
        """Log-probability and entropy of given scale vectors ``(S, B)`` under the policy."""
        with _one_thread():
            return self._run(scale_vectors.bool(), greedy=False, generator=None)


class Reinforce:
    """REINFORCE with a moving-average baseline and an entropy bonus (SPEC section 3)."""

    def __init__(self, controller: Controller, cfg: ControllerConfig):
        self.controller = controller
        self.cfg = cfg
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=cfg.lr)
        self.baseline: float | None = None

    def update(self, scale_vectors: list[torch.Tensor], rewards: list[float]) -> dict[str, float]:
        """One policy-gradient step from a batch of (architecture, reward) pairs."""
        mean_reward = float(sum(rewards) / len(rewards))
        if self.baseline is None:
            self.baseline = mean_reward
        else:
            d = self.cfg.baseline_decay
            self.baseline = d * self.baseline + (1 - d) * mean_reward
        losses, entropies = [], []
        for sv, r in zip(scale_vectors, rewards):
            scored = self.controller.evaluate(sv)
            advantage = r - self.baseline
            losses.append(-advantage * scored.log_prob - self.cfg.entropy_weight * scored.entropy)
            entropies.append(float(scored.entropy.detach()))
        loss = torch.stack(losses).mean()
        with _one_thread():
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return {"loss": float(loss.detach()), "reward": mean_reward, "baseline": self.baseline,
                "entropy": sum(entropies) / len(entropies)}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]


def policy_entropy(controller: Controller) -> float:
    """Entropy of the policy along its most likely path (sum over decisions, nats)."""
    with torch.no_grad():
        return float(controller.evaluate(controller.most_likely().scale_vectors).entropy)
