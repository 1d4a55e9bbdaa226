"""The AutoPose supernet: stem, stages of multi-scale modules, head (SPEC section 2).

``Supernet.forward(images, scale_vectors, tau)``:

* ``images``: ``(N, 3, H, W)``; returns heatmaps ``(N, K, ceil(H/4), ceil(W/4))``.
* ``scale_vectors``: one binary vector per stage (``num_stages x num_branches``), from the
  network-level controller; both modules of a stage use their stage's vector.
* ``tau``: Gumbel-softmax temperature of the cell-level op sample.

One sample of ops per forward pass is shared by every individual cell and one by every
aggregation cell (the alphas are shared by all stages, modules and branches, so one sample is
one genotype). The sample used is kept in ``last_ops``; passing ``ops=`` fixes it instead, e.g.
``supernet.fixed_ops(...)`` or ``supernet.argmax_ops()``, which is how a sampled sub-network
is re-run or compared with its derived network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autopose.config import ModelConfig
from autopose.errors import UserError
from autopose.search_space.cells import EdgeChoices, aggregation_edges, individual_edges
from autopose.search_space.multiscale import MultiScaleModule
from autopose.search_space.ops import ConvBN, check_ops, heatmap_conv


class StemBottleneck(nn.Module):
    """Residual bottleneck 1x1 -> 3x3 -> 1x1, projection shortcut when widths differ."""

    def __init__(self, c_in: int, mid: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(c_in, mid, 1)
        self.conv2 = ConvBN(mid, mid, 3)
        self.conv3 = ConvBN(mid, c_out, 1)
        self.shortcut = ConvBN(c_in, c_out, 1) if c_in != c_out else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, H, W) -> (N, C_out, H, W)``."""
        y = self.relu(self.conv1(x))
        y = self.relu(self.conv2(y))
        y = self.conv3(y)
        return self.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class Stem(nn.Module):
    """Two 3x3 stride-2 conv-BN-ReLU, one bottleneck (1/4 scale), then one 3x3 stride-2
    conv-BN-ReLU per further scale, each from the previous one (paper section 4.2)."""

    def __init__(self, stem_channels: int, channels: list[int]) -> None:
        super().__init__()
        s = stem_channels
        self.conv1 = nn.Sequential(ConvBN(3, s, 3, 2), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(ConvBN(s, s, 3, 2), nn.ReLU(inplace=True))
        # Bottleneck middle width = stem width (our choice; the paper gives no number).
        self.bottleneck = StemBottleneck(s, s, channels[0])
        self.down = nn.ModuleList([nn.Sequential(ConvBN(channels[k - 1], channels[k], 3, 2),
                                                 nn.ReLU(inplace=True))
                                   for k in range(1, len(channels))])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(N, 3, H, W)`` -> ``[(N, C_k, H / 2^(k+2), W / 2^(k+2)) for each branch k]``."""
        y = self.bottleneck(self.conv2(self.conv1(x)))
        out = [y]
        for down in self.down:
            out.append(down(out[-1]))
        return out


class Head(nn.Module):
    """Upsample every branch to 1/4 (nearest), fuse, 1x1 conv to K heatmaps.

    ``fuse="concat"`` (paper section 4.2): concatenate the branches. ``fuse="sum"`` (paper
    section 3): 1x1 conv-BN-ReLU each coarser branch to branch 0's width, then sum.
    """

    def __init__(self, channels: list[int], num_joints: int, fuse: str = "concat") -> None:
        super().__init__()
        if fuse not in ("concat", "sum"):
            raise UserError(f"model.head_fuse: expected concat or sum, got {fuse!r}")
        self.fuse = fuse
        if fuse == "sum":
            self.project = nn.ModuleDict({
                str(k): nn.Sequential(ConvBN(c, channels[0], 1), nn.ReLU(inplace=True))
                for k, c in enumerate(channels) if k > 0})
            c_in = channels[0]
        else:
            c_in = sum(channels)
        self.final = heatmap_conv(c_in, num_joints)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """``[(N, C_k, H_k, W_k)]`` -> ``(N, K, H_0, W_0)``."""
        size = tuple(xs[0].shape[-2:])
        # Cell outputs end in BN (ops are pre-activation), so activate before the final conv.
        if self.fuse == "concat":
            # final(concat(up(x_k))) computed as sum_k up(final_k(x_k)): nearest upsampling and
            # ReLU commute with a 1x1 conv, so this is the same function, but it upsamples K
            # maps per branch instead of C_k (the concat of full-width maps dominated the head).
            w = self.final.weight
            y: torch.Tensor | None = None
            start = 0
            for x in xs:
                c = x.shape[1]
                z = F.conv2d(F.relu(x), w[:, start:start + c],
                             self.final.bias if start == 0 else None)
                start += c
                if z.shape[-2:] != size:
                    z = F.interpolate(z, size=size, mode="nearest")
                y = z if y is None else y + z
            assert y is not None
            return y
        y = F.relu(xs[0])
        for k, x in enumerate(xs[1:], start=1):
            y = y + F.interpolate(self.project[str(k)](x), size=size, mode="nearest")
        return self.final(y)


@dataclass
class SampledOps:
    """The ops of one forward pass: for individual cells and for aggregation cells."""

    individual: EdgeChoices
    aggregation: EdgeChoices | None  # None for the concat ablation


def check_scale_vectors(scale_vectors: Sequence[Sequence[int | bool]] | torch.Tensor,
                        num_stages: int, num_branches: int) -> list[list[bool]]:
    """``num_stages x num_branches`` of 0/1 (list or tensor) -> list of lists of bools."""
    if isinstance(scale_vectors, torch.Tensor):
        scale_vectors = scale_vectors.tolist()
    vectors = [[bool(b) for b in v] for v in scale_vectors]
    if len(vectors) != num_stages or any(len(v) != num_branches for v in vectors):
        raise ValueError(f"scale_vectors: expected {num_stages} vectors of {num_branches} bits, "
                         f"got {scale_vectors!r}")
    return vectors


class Supernet(nn.Module):
    """The search-time network over the whole AutoPose search space."""

    def __init__(self, cfg: ModelConfig, num_joints: int = 17) -> None:
        super().__init__()
        self.ops = check_ops(list(cfg.ops))
        if cfg.aggregation not in ("cell", "concat"):
            raise UserError(f"model.aggregation: expected cell or concat, got {cfg.aggregation!r}")
        self.channels = list(cfg.branch_channels)
        self.num_stages = cfg.num_stages
        self.num_branches = len(self.channels)
        self.aggregation = cfg.aggregation
        self.individual_nodes = cfg.individual_nodes
        self.aggregation_nodes = cfg.aggregation_nodes
        self.stem_channels = cfg.stem_channels
        self.head_fuse = cfg.head_fuse
        self.modules_per_stage = cfg.modules_per_stage

        self.stem = Stem(cfg.stem_channels, self.channels)
        self.stages = nn.ModuleList([
            nn.ModuleList([MultiScaleModule(self.channels, cfg.individual_nodes,
                                            cfg.aggregation_nodes, self.ops, cfg.aggregation,
                                            cfg.search_op_affine)
                           for _ in range(cfg.modules_per_stage)])
            for _ in range(cfg.num_stages)])
        self.head = Head(self.channels, num_joints, cfg.head_fuse)

        n_ops = len(self.ops)
        # Small random init (DARTS): near-uniform op probabilities, ties broken at random.
        self.alpha_individual = nn.Parameter(
            1e-3 * torch.randn(len(individual_edges(cfg.individual_nodes)), n_ops))
        if cfg.aggregation == "cell":
            self.alpha_aggregation = nn.Parameter(1e-3 * torch.randn(
                len(aggregation_edges(cfg.aggregation_nodes, self.num_branches)), n_ops))
        else:
            self.register_parameter("alpha_aggregation", None)
        self.last_ops: SampledOps | None = None

    # ------------------------------------------------------------------ parameters

    def arch_parameters(self) -> list[nn.Parameter]:
        """The cell-level architecture parameters (alphas)."""
        return [p for p in (self.alpha_individual, self.alpha_aggregation) if p is not None]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the alphas."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    # ------------------------------------------------------------------ op choices

    def sample_ops(self, tau: float) -> SampledOps:
        """A hard straight-through Gumbel-softmax sample of both alphas at temperature tau."""
        agg = (EdgeChoices.sample(self.alpha_aggregation, tau)
               if self.alpha_aggregation is not None else None)
        return SampledOps(EdgeChoices.sample(self.alpha_individual, tau), agg)

    def relax_ops(self, tau: float) -> SampledOps:
        """A soft Gumbel-softmax sample of both alphas (paper eq. 4): every op of every edge
        runs, weighted, so that the alpha gradient compares ops (the alpha step)."""
        agg = (EdgeChoices.relax(self.alpha_aggregation, tau)
               if self.alpha_aggregation is not None else None)
        return SampledOps(EdgeChoices.relax(self.alpha_individual, tau), agg)

    def argmax_ops(self) -> SampledOps:
        """The most likely op on every edge, as fixed choices (no gradient to alpha)."""
        return self.fixed_ops(self.alpha_individual.argmax(-1).tolist(),
                              None if self.alpha_aggregation is None
                              else self.alpha_aggregation.argmax(-1).tolist())

    def fixed_ops(self, individual: list[int], aggregation: list[int] | None) -> SampledOps:
        """Ops fixed by index into ``self.ops``, one per edge of each cell kind."""
        dev = self.alpha_individual.device
        n = len(self.ops)
        if len(individual) != self.alpha_individual.shape[0]:
            raise ValueError(f"individual: expected {self.alpha_individual.shape[0]} op indices")
        agg = None
        if self.alpha_aggregation is not None:
            if aggregation is None or len(aggregation) != self.alpha_aggregation.shape[0]:
                raise ValueError(
                    f"aggregation: expected {self.alpha_aggregation.shape[0]} op indices")
            agg = EdgeChoices.fixed(aggregation, n, dev)
        return SampledOps(EdgeChoices.fixed(individual, n, dev), agg)

    # ------------------------------------------------------------------ forward

    def forward(self, images: torch.Tensor,
                scale_vectors: Sequence[Sequence[int | bool]] | torch.Tensor,
                tau: float = 1.0, ops: SampledOps | None = None) -> torch.Tensor:
        """``(N, 3, H, W)`` -> heatmaps ``(N, K, ceil(H/4), ceil(W/4))``.

        Samples the ops at temperature ``tau`` unless ``ops`` is given; either way the ops
        used are left in ``self.last_ops``.
        """
        return self.head(self.features(images, scale_vectors, tau, ops))

    def features(self, images: torch.Tensor,
                 scale_vectors: Sequence[Sequence[int | bool]] | torch.Tensor,
                 tau: float = 1.0, ops: SampledOps | None = None) -> list[torch.Tensor]:
        """The branch features before the head: ``[(N, C_k, H / 2^(k+2), W / 2^(k+2))]``."""
        vectors = check_scale_vectors(scale_vectors, self.num_stages, self.num_branches)
        if ops is None:
            ops = self.sample_ops(tau)
        self.last_ops = ops
        xs = self.stem(images)
        for s in range(len(self.stages)):
            xs = self.forward_stage(s, xs, vectors[s], ops)
        return xs

    def forward_stage(self, stage: int, xs: list[torch.Tensor], scale_vector: Sequence[bool],
                      ops: SampledOps) -> list[torch.Tensor]:
        """Run one stage's modules on the branch features ``xs`` (shapes kept)."""
        for module in self.stages[stage]:
            xs = module(xs, scale_vector, ops.individual, ops.aggregation)
        return xs
