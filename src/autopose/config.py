"""Typed configuration: dataclasses loaded from YAML, with ``key=value`` overrides.

Every number the paper gives (or that SPEC.md supplies where the paper's text lost it) is a
field here, never a constant in code. A YAML file sets only what differs from these
defaults; an unknown key, in a file or an override, is an error naming the file and key.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from autopose.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
# What a command uses without --config: the built-in synthetic setting.
DEFAULT_CONFIG = CONFIG_DIR / "synthetic" / "default.yaml"

# ---------------------------------------------------------------------------- legal values
# Every choice a config can make, in one place: the loader rejects anything else, naming the
# file and the field. Code that acts on a choice keeps a plain dict from these names.

Format = Literal["coco", "mpii"]  # COCO-format (the built-in set too) | MPII (data/formats.py)
SyntheticLevel = Literal["standard", "easy"]  # docs/synthetic.md, "Levels"
Codec = Literal["standard", "dark"]  # data/codec.py: HRNet's | DARK's
# The candidate ops of search_space/ops.py (OPS); the default space uses the first six.
OpName = Literal["conv_1x1", "conv_3x3", "conv_5x5", "avg_pool_3x3", "max_pool_3x3", "skip",
                 "sep_conv_3x3", "dil_conv_3x3"]
Aggregation = Literal["cell", "concat"]  # aggregation cell | plain concat (the ablation)
HeadFuse = Literal["concat", "sum"]
Optimizer = Literal["adam", "sgd"]
Amp = Literal["none", "bf16", "fp16"]  # mixed precision, CUDA only
AlphaSchedule = Literal["constant", "cosine"]
RewardSplit = Literal["train", "val"]
Reward = Literal["ap", "oks"]
Branches = Literal["search", "all"]  # controller-searched | every branch on (the ablation)
WeightSampling = Literal["policy", "uniform"]


class FieldError(ValueError):
    """A value out of its range, raised by a section's ``__post_init__`` with the field's
    name; the loader turns it into a one-line error naming the file and the dotted key."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name, self.message = name, message


def _at_least(section: Any, names: tuple[str, ...], low: int, why: str = "") -> None:
    for name in names:
        value = getattr(section, name)
        if value < low:
            raise FieldError(name, f"must be {'at least' if low > 0 else '>='} {low}{why}, "
                                   f"got {value}")


def _positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise FieldError(name, f"must be a positive number, got {value}")


def _positives(section: Any, names: tuple[str, ...]) -> None:
    for name in names:
        _positive(name, getattr(section, name))


def _between(section: Any, names: tuple[str, ...], low: float, high: float,
             high_open: bool = False) -> None:
    """Each field in ``[low, high]`` (``[low, high)`` with ``high_open``); NaN fails too."""
    for name in names:
        value = getattr(section, name)
        if not (low <= value and (value < high if high_open else value <= high)):
            raise FieldError(name, f"must be in [{low:g}, {high:g}{')' if high_open else ']'}, "
                                   f"got {value}")


def _not_negative(section: Any, names: tuple[str, ...], why: str = "") -> None:
    """Each float field finite and >= 0 (``_at_least`` is for ints, which are finite)."""
    for name in names:
        value = getattr(section, name)
        if not (value >= 0 and math.isfinite(value)):
            raise FieldError(name, f"must be a finite number >= 0{why}, got {value}")


def _size(name: str, value: list[int], order: str, stride: int = 1) -> None:
    """Two positive integers (an image or input size), each divisible by ``stride``."""
    if len(value) != 2 or min(value) < 1:
        raise FieldError(name, f"expected [{order}] of positive integers, got {value}")
    if any(v % stride for v in value):
        raise FieldError(name, f"{value}: each side must be divisible by data.heatmap_stride "
                               f"({stride}), or the heatmaps do not cover the input")


@dataclass
class SplitConfig:
    """One split of a keypoint set: images folder, annotation file, optional detections."""

    images: str | None = None
    ann: str | None = None
    # Person detections in the COCO results format; when set, testing uses these boxes
    # instead of the ground-truth ones (HRNet's USE_GT_BBOX: false).
    det_file: str | None = None
    det_score_thresh: float = 0.0
    # MPII only: ground truth for PCKh in the layout of the reference gt_valid.mat.
    pckh_gt: str | None = None

    def __post_init__(self) -> None:
        _between(self, ("det_score_thresh",), 0.0, 1.0)  # detection scores are in [0, 1]


@dataclass
class AugmentConfig:
    """Training augmentation (SPEC section 4; HRNet's COCO values)."""

    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    flip: bool = True
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_scale: float = 1.5

    def __post_init__(self) -> None:
        # The crop scale is sampled in [1 - s, 1 + s]: s >= 1 could make it zero or negative.
        _between(self, ("scale_factor",), 0.0, 1.0, high_open=True)
        _between(self, ("rotation_factor",), 0.0, 180.0)
        _between(self, ("rotation_prob", "flip_prob", "half_body_prob"), 0.0, 1.0)
        _at_least(self, ("half_body_min_joints",), 0)
        _positive("half_body_scale", self.half_body_scale)


@dataclass
class KeypointConfig:
    """Metadata a custom COCO-format set cannot carry in its category (flip pairs, sigmas).

    Left empty for COCO-17 and MPII-16, whose metadata is built in.
    """

    flip_pairs: list[list[int]] | None = None
    sigmas: list[float] | None = None
    upper_body: list[int] | None = None


@dataclass
class SyntheticConfig:
    """The built-in synthetic set, generated on first use when no data path is given."""

    num_train: int = 2000
    num_val: int = 200
    seed: int = 0
    image_size: list[int] = field(default_factory=lambda: [640, 480])  # W, H
    # standard (the benchmark) | easy (one person facing the camera, no distractors or
    # occluders: learnt in minutes; docs/synthetic.md)
    level: SyntheticLevel = "standard"

    def __post_init__(self) -> None:
        # The generator checks the sides' bounds (data/synthetic/generator.py _check), and
        # that the set is not empty; data synth takes the same numbers from its flags.
        _at_least(self, ("num_train", "num_val", "seed"), 0)
        _size("image_size", self.image_size, "width, height")


@dataclass
class DataConfig:
    format: Format = "coco"
    train: SplitConfig = field(default_factory=SplitConfig)
    val: SplitConfig = field(default_factory=SplitConfig)
    # Network input as [height, width], the order of the "256x192" in config names.
    input_size: list[int] = field(default_factory=lambda: [256, 192])
    heatmap_stride: int = 4
    sigma: float = 2.0
    # Heatmap codec: standard (HRNet's: rounded Gaussian centres, quarter-pixel decoding) |
    # dark (DARK's unbiased encoding and distribution-aware decoding; data/codec.py)
    codec: Codec = "standard"
    blur_kernel: int = 11  # DARK's smoothing before decoding (11 for sigma 2, 17 for sigma 3)
    bbox_padding: float = 1.25
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    keypoints: KeypointConfig = field(default_factory=KeypointConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    workers: int = 2
    # A damaged image (truncated, or not decodable): "error" stops the run with one line
    # naming the file (mmpose's behaviour); "skip" drops its records, counted in the
    # loader's summary line (each image is then also decoded once, at 1/8 size, at load).
    corrupt_images: Literal["error", "skip"] = "error"

    def __post_init__(self) -> None:
        _at_least(self, ("heatmap_stride",), 1)
        _size("input_size", self.input_size, "height, width", self.heatmap_stride)
        _at_least(self, ("workers",), 0)
        _positives(self, ("sigma", "bbox_padding"))
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
            raise FieldError("blur_kernel", f"must be a positive odd number, got {self.blur_kernel}")

    @property
    def heatmap_size(self) -> list[int]:
        """[height, width] of the output heatmaps."""
        return [s // self.heatmap_stride for s in self.input_size]


@dataclass
class ModelConfig:
    """The AutoPose search space and the networks derived from it (SPEC section 2)."""

    branch_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    width_mult: float = 2.0
    stem_channels: int = 64
    num_stages: int = 3
    modules_per_stage: int = 2
    individual_nodes: int = 3
    aggregation_nodes: int = 3
    ops: list[OpName] = field(default_factory=lambda: [
        "conv_1x1", "conv_3x3", "conv_5x5", "avg_pool_3x3", "max_pool_3x3", "skip"])
    aggregation: Aggregation = "cell"
    head_fuse: HeadFuse = "concat"
    # Incoming edges kept per node when a genotype is derived; 0 keeps every edge (SPEC: the
    # paper's rule was lost, and DARTS's top-2 is not a given for these cells).
    edges_per_node: int = 0
    # The same for aggregation cells. Their edge sources are absolute scales (scale0 = 1/4)
    # shared by every branch's cell, so a top-k rule cuts every branch off the same scales,
    # its own included: the 1/4 branch of a derived network then outputs upsampled 1/32
    # features (measured: AP .75 0.09 on the built-in set). HRNet's fusion reads every branch.
    aggregation_edges_per_node: int = 0
    # Whether the supernet's candidate ops have BatchNorm scale and shift (DARTS: no; with
    # them the alpha gradient compares BN scales, not ops). Derived networks always have them.
    search_op_affine: bool = False

    def __post_init__(self) -> None:
        if not self.branch_channels or min(self.branch_channels) < 1:
            raise FieldError("branch_channels", f"expected a list of positive integers, got "
                                                f"{self.branch_channels}")
        _positive("width_mult", self.width_mult)
        _at_least(self, ("stem_channels", "num_stages", "modules_per_stage",
                         "individual_nodes", "aggregation_nodes"), 1)
        _at_least(self, ("edges_per_node", "aggregation_edges_per_node"), 0, " (0: every edge)")
        if not self.ops or len(set(self.ops)) != len(self.ops):
            raise FieldError("ops", f"expected a list of distinct op names, got {self.ops}")


@dataclass
class TrainConfig:
    """Training the derived network from scratch (SPEC section 4)."""

    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_steps: list[int] = field(default_factory=lambda: [170, 200])
    lr_factor: float = 0.1
    epochs: int = 210
    batch_size: int = 128  # in total, over all processes
    val_every: int = 10
    amp: Amp = "none"
    channels_last: bool = False
    clip_grad: float = 0.0  # 0 disables
    momentum: float = 0.9  # optimizer sgd only
    # Iterations between mid-epoch checkpoints (last.pt); 0: only at the end of each epoch.
    checkpoint_every: int = 0
    # Width multiplier of the derived network; null: the genotype's own (search default 2).
    width_mult: float | None = None
    log_every: int = 20  # iterations between loss points in TensorBoard
    # torch CPU threads of each training process; 0 leaves torch's default (one per core).
    # With data workers on a small machine, 1 avoids cores oversubscribed by spinning threads.
    threads: int = 0

    def __post_init__(self) -> None:
        _at_least(self, ("epochs", "batch_size", "val_every", "log_every"), 1)
        _at_least(self, ("threads",), 0, " (0: torch's default)")
        _at_least(self, ("checkpoint_every",), 0)
        _positives(self, ("lr", "lr_factor"))
        _not_negative(self, ("clip_grad",), " (0 disables)")
        _not_negative(self, ("weight_decay",))
        _between(self, ("momentum",), 0.0, 1.0, high_open=True)
        if self.width_mult is not None:
            _positive("width_mult", self.width_mult)
        if list(self.lr_steps) != sorted(self.lr_steps) or min(self.lr_steps, default=0) < 0:
            raise FieldError("lr_steps", f"must be increasing epochs >= 0, got {self.lr_steps}")


@dataclass
class TestConfig:
    """Test-time conventions of the reference pose codebases (SPEC section 4)."""

    flip: bool = True
    shift_heatmap: bool = True
    batch_size: int = 32
    in_vis_thre: float = 0.2  # joints above it count towards the instance score
    oks_thre: float = 0.9  # OKS-NMS threshold

    def __post_init__(self) -> None:
        _at_least(self, ("batch_size",), 1)
        _between(self, ("in_vis_thre", "oks_thre"), 0.0, 1.0)  # heatmap maxima, OKS


@dataclass
class ControllerConfig:
    """The network-level RNN controller and its REINFORCE update (SPEC section 3).

    Values are the ENAS-style defaults SPEC supplies where the paper lost its numbers, except
    where a measurement says otherwise (tests/search/test_controller.py: a planted reward,
    bit matches + N(0, 0.1) noise per architecture and period, and a pure-noise reward, each
    over 6 periods of M updates of N architectures).
    """

    hidden: int = 100
    tanh_constant: float = 2.5
    temperature: float = 5.0
    # Adam. SPEC's (and NNI ENAS') 3.5e-4 is for thousands of steps; the search gives the
    # controller a dozen in 6 periods. Measured with the defaults below (planted reward, 4
    # targets x seeds 0-9): 3.5e-4 found 0 of 40 targets; 5e-3 38/40; 1e-2 40/40 (78/80 at
    # seeds 10-29); 2e-2 37/40. Under pure noise 1e-2 kept >= 0.955 of the maximum entropy
    # after 6 periods and >= 0.98 after 45; 3e-2 fell to 0.82 in 6 (kl_weight 0.1).
    lr: float = 1e-2
    # Entropy bonus on each sample's summed decision entropies (NNI ENAS' entropy_weight;
    # too small to matter here, kept for ENAS parity: the KL term below does the work).
    entropy_weight: float = 1e-4
    # The collapse guard (NNI ENAS' skip penalty: skip_weight 0.8, target 0.4): each
    # Bernoulli decision's KL divergence from Bernoulli(on_target), summed over decisions,
    # times kl_weight, added to the loss; the single-branch variant uses KL to uniform. The
    # target is 0.5, the warm-up's own sampling: ENAS' 0.4 would pull branches off, toward
    # the tiny networks the guard is against (at 0.5 the term is kl_weight x (ln 2 - H) per
    # bit, an entropy bonus that grows with the distance from uniform). Measured (lr 1e-2,
    # M=2, N=12): under pure noise for 45 periods kl_weight 0 fell to 0.51 of the maximum
    # entropy, 0.1 to 0.90, 0.3 stayed >= 0.98; on the planted reward in 6 periods 0.3 found
    # 40/40 targets, 0.1 19/20, 1.0 34/40 (it holds the policy too near uniform).
    on_target: float = 0.5
    kl_weight: float = 0.3
    # The earliest period (0-based) whose end may end the warm-up (then search.warmup_*).
    start_epoch: int = 5
    # M updates per period, each on N sampled architectures (NNI ENAS aggregates 20 per
    # step). M x N = 24 keeps to the ~20 distinct reward evaluations a period affords (same
    # architecture, same reward within a period). Measured (lr 1e-2, kl_weight 0.3, 4
    # planted targets x 10 seeds): M=2, N=12 40/40; M=3, N=8 39/40 with entropy under noise
    # down to 0.956 (6 periods); M=1, N=20 34/40 (6 steps are too few).
    updates_per_epoch: int = 2  # M
    archs_per_update: int = 12  # N

    def __post_init__(self) -> None:
        _at_least(self, ("hidden", "updates_per_epoch", "archs_per_update"), 1)
        _at_least(self, ("start_epoch",), 0)
        _positives(self, ("tanh_constant", "temperature", "lr"))
        _not_negative(self, ("entropy_weight", "kl_weight"))
        # KL from Bernoulli(0) or Bernoulli(1) is infinite for any other policy.
        if not 0 < self.on_target < 1:
            raise FieldError("on_target", f"must be in (0, 1), got {self.on_target}")


@dataclass
class SearchConfig:
    """The bi-level search (paper section 3.2): Gumbel cell search + RL branch controller."""

    epochs: int = 50
    # Per process (unlike train.batch_size, the total): under torchrun each step sees
    # batch_size x N images and an epoch has 1/N as many iterations.
    batch_size: int = 32
    # Iterations per epoch; 0 is a full pass over the weight half. A cap makes "epoch" the
    # controller's update period on a set too large (or a machine too small) for full passes.
    iters_per_epoch: int = 0
    # Weights: Adam; alphas: Adam with DARTS' lr and betas (paper's lost), but no weight decay:
    # DARTS' 1e-3 assumes cross-entropy gradients; this heatmap MSE gives alpha gradients of
    # about 5e-5, and a decay of 1e-3 pinned every alpha within 0.01 of zero.
    weight_lr: float = 1e-3
    alpha_lr: float = 3e-4
    alpha_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    alpha_weight_decay: float = 0.0
    # Ours (the paper has no cost term): the alpha step minimises loss x (1 + w x c), c the
    # relaxed cells' expected op cost relative to an all-costliest-op cell (MACs, 0..1),
    # as FBNet and ProxylessNAS do. 0 (the paper's objective): the relaxation favours the
    # biggest convolution, whose cells a short schedule trains worst (docs/ranking/).
    alpha_cost_weight: float = 0.0
    # An alpha step (every op of every edge runs: about 4x a weight step on a CPU) on every
    # alpha_every-th iteration; 1 is DARTS' alternation.
    alpha_every: int = 1
    # The alpha learning rate over the search: "constant" (DARTS) or "cosine" (annealed to 0
    # by the last iteration, so that the argmax ops settle instead of flipping between
    # near-tied ops under the noisy, nearly hard, samples of the low temperatures).
    alpha_lr_schedule: AlphaSchedule = "constant"
    # The warm-up (uniform scale vectors, no controller update) ends at the end of the first
    # period from controller.start_epoch on whose mean weight loss is below
    # warmup_loss_ratio x the loss of an all-zero heatmap on the same batches, and at the
    # latest after warmup_max_fraction of the periods.
    warmup_loss_ratio: float = 0.9
    warmup_max_fraction: float = 0.5
    tau_start: float = 10.0
    tau_end: float = 0.1
    # Reward: OKS AP of a sampled sub-network with the shared weights on a held-out slice of
    # the training images ("train", default 5 %), or on data.val ("val", the paper's choice).
    reward_split: RewardSplit = "train"
    reward_fraction: float = 0.05
    # "ap": COCO OKS AP (the paper's). "oks": the mean OKS of each ground-truth person with
    # the pose predicted in its box, a dense form of the same similarity: early in a short
    # search on a hard set every AP is 0, which leaves REINFORCE without a signal.
    reward: Reward = "ap"
    reward_flip: bool = False
    # Persons per forward pass of a reward (per process); 0: test.batch_size. The reward's
    # BatchNorm normalises with each batch's own statistics (search/reward.py), so a batch
    # of the whole reward set normalises every person alike, and costs fewer passes.
    reward_batch_size: int = 0
    derive_samples: int = 10  # N sampled scale-vector sets (+ the most likely one)
    # Ablations (paper tables 4 and 5).
    branches: Branches = "search"  # all: no controller, every branch on
    single_branch: bool = False  # at most one active branch per stage
    # Scale vectors of the weight and alpha steps once the controller learns: "policy" (ENAS
    # and the paper: sampled from the controller) or "uniform" (every sub-network trained
    # equally, as in FairNAS-style one-shot search; the controller learns from rewards only).
    weight_sampling: WeightSampling = "policy"
    # Channels-last supernet weights and inputs: 1.4x faster search steps on a 2-core CPU
    # (BENCHMARKS.md); NCHW (false) is the SPEC default.
    channels_last: bool = False
    input_size: list[int] | None = None  # [H, W] during search; None: data.input_size
    # The augmentation of the search's weight and alpha batches; None: data.aug. Apart from
    # data.aug as the input size is, so that one setting can search with HRNet's augmentation
    # and train a derived network with another (the built-in setting does).
    aug: AugmentConfig | None = None
    # torch CPU threads of each search process; 0 leaves torch's default (one per core). With
    # data workers on a small machine, 1 avoids cores oversubscribed by spinning threads
    # (steps several times slower when another job shares the cores).
    threads: int = 0
    # torch CPU threads while rewards are scored (forward passes only, at the end of a period,
    # when the data workers are idle); 0 keeps search.threads. Capped at the process's share
    # of the cores (those it may run on, divided among torchrun's processes on the machine).
    reward_threads: int = 0
    checkpoint_every: int = 50  # iterations, besides every epoch
    controller: ControllerConfig = field(default_factory=ControllerConfig)

    def __post_init__(self) -> None:
        _at_least(self, ("epochs", "batch_size", "alpha_every"), 1)
        _at_least(self, ("iters_per_epoch",), 0, " (0: a full pass)")
        _at_least(self, ("checkpoint_every", "derive_samples", "reward_batch_size"), 0)
        _at_least(self, ("threads",), 0, " (0: torch's default)")
        _at_least(self, ("reward_threads",), 0, " (0: search.threads)")
        _positives(self, ("weight_lr", "alpha_lr", "warmup_loss_ratio", "tau_start", "tau_end"))
        _not_negative(self, ("alpha_weight_decay", "alpha_cost_weight"))
        if len(self.alpha_betas) != 2:
            raise FieldError("alpha_betas", f"expected [beta1, beta2], got {self.alpha_betas}")
        for i, beta in enumerate(self.alpha_betas):
            if not 0 <= beta < 1:
                raise FieldError(f"alpha_betas[{i}]", f"must be in [0, 1), got {beta}")
        _between(self, ("warmup_max_fraction",), 0.0, 1.0)
        if not 0 < self.reward_fraction < 1:
            raise FieldError("reward_fraction", f"must be in (0, 1), got {self.reward_fraction}")


@dataclass
class Config:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def __post_init__(self) -> None:
        # numpy seeds with seed % 2**32; a negative one is most likely a typo.
        _at_least(self, ("seed",), 0)
        # Across sections: the search's input makes heatmaps of the same stride.
        if self.search.input_size is not None:
            try:
                _size("input_size", self.search.input_size, "height, width",
                      self.data.heatmap_stride)
            except FieldError as e:
                raise FieldError(f"search.{e.name}", e.message) from None


# ---------------------------------------------------------------------------- loading


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, str) and value in choices:
            return value
        raise UserError(f"{source}: {key}: expected one of {', '.join(choices)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except UserError as e:
                errors.append(e)
        raise errors[0] if errors else UserError(f"{source}: {key}: must not be null")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{source}: {key}: expected a mapping, got {value!r}")
        return _build(tp, value, source, prefix=key + ".")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{source}: {key}: expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{source}: {key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is Any or (isinstance(tp, type) and isinstance(value, tp)
                     and not (tp is int and isinstance(value, bool))):
        return value
    raise UserError(f"{source}: {key}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, values: dict[str, Any], source: str, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in values:
        if k not in names:
            raise UserError(f"{source}: {prefix}{k}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], prefix + k, source) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except FieldError as e:
        raise UserError(f"{source}: {prefix}{e.name}: {e.message}") from None


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise UserError(f"override {dotted}: {p} is not a section")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=0.01"`` -> ``("train.lr", 0.01)``; the value is read as YAML, never eval'd."""
    if "=" not in text:
        raise UserError(f"override {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as e:
        raise UserError(f"override {text!r}: value is not valid YAML ({e.__class__.__name__})") from None
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    tree: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise UserError(f"{path}: cannot read config ({e.strerror})") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise UserError(f"{path}: not valid YAML{at}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UserError(f"{path}: top level must be a mapping")
        tree = loaded
    return config_from_dict(tree, source, overrides)


def config_from_dict(tree: dict[str, Any], source: str,
                     overrides: list[str] | None = None) -> Config:
    """A config from its dict form (e.g. the one a checkpoint holds), then the overrides.

    ``source`` names where the dict came from in error messages.
    """
    cfg = _build(Config, tree, source)
    for ov in overrides or []:
        key, value = parse_override(ov)
        patch: dict[str, Any] = {}
        _set_path(patch, key, value)
        merged = _merge(to_dict(cfg), patch)
        # "config", as the checks after loading say: the key names the field.
        cfg = _build(Config, merged, "config")
    return cfg


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML, loadable again by :func:`load_config`."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
