"""SimpleBaseline pose network with a ResNet-50 backbone (34.0 M parameters with 17 joints).

ResNet-50 (7x7 stride-2 conv, 3x3 max-pool, bottleneck stages of 3, 4, 6, 3 blocks with the
stride on the 3x3 conv), then three 4x4 stride-2 deconvolution-BN-ReLU layers of 256 filters
and a 1x1 conv to K heatmaps: ``(N, 3, H, W) -> (N, K, H/4, W/4)``.

The backbone's parameter names follow the common ResNet layout (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0``, ...), so ImageNet weights saved from a standard
ResNet-50 state dict load into ``backbone`` directly. Initial weights are only ever read from a
file the user names, with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from autopose.errors import UserError
from autopose.search_space.ops import heatmap_conv


class ResBottleneck(nn.Module):
    """ResNet bottleneck: ``(N, C_in, H, W) -> (N, 4 * planes, H / stride, W / stride)``."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or c_in != out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, out, 1, stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50Backbone(nn.Module):
    """ResNet-50 without pooling and classifier: ``(N, 3, H, W) -> (N, 2048, H/32, W/32)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = 64
        for name, planes, blocks, stride in (("layer1", 64, 3, 1), ("layer2", 128, 4, 2),
                                             ("layer3", 256, 6, 2), ("layer4", 512, 3, 2)):
            layers = []
            for b in range(blocks):
                layers.append(ResBottleneck(c_in, planes, stride if b == 0 else 1))
                c_in = planes * ResBottleneck.expansion
            setattr(self, name, nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class SimpleBaseline(nn.Module):
    """ResNet-50 + 3 x (deconv 4x4 stride 2, 256) + 1x1 conv: ``(N,3,H,W) -> (N,K,H/4,W/4)``."""

    def __init__(self, num_joints: int = 17, deconv_channels: int = 256,
                 deconv_layers: int = 3) -> None:
        super().__init__()
        self.backbone = ResNet50Backbone()
        layers: list[nn.Module] = []
        c_in = 2048
        for _ in range(deconv_layers):
            layers += [nn.ConvTranspose2d(c_in, deconv_channels, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(deconv_channels), nn.ReLU(inplace=True)]
            c_in = deconv_channels
        self.deconv = nn.Sequential(*layers)
        self.final = heatmap_conv(c_in, num_joints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.deconv(self.backbone(x)))


def load_initial_weights(model: SimpleBaseline, path: str | Path) -> None:
    """Load a user-given weights file into the backbone (ResNet-50 state dict) or the model.

    Accepted: a plain state dict, or one under ``"state_dict"`` / ``"model"``; a ``module.``
    prefix (DataParallel) is stripped; a classifier (``fc.*``) is ignored.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: weights file not found") from None
    except Exception as e:  # unpickling refused or a corrupt file: say which file
        raise UserError(f"{path}: cannot load weights ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:120] if str(e) else 'no detail'})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors")
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    target: nn.Module = model
    if not any(k.startswith(("backbone.", "deconv.", "final.")) for k in state):
        target = model.backbone
    own = target.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        which = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise UserError(f"{path}: does not fit SimpleBaseline-50 ({which}; "
                        f"{len(missing)} missing, {len(unexpected)} unexpected keys)")
    for k, v in state.items():
        if v.shape != own[k].shape:
            raise UserError(f"{path}: {k}: shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    target.load_state_dict(state)


def simple_baseline_50(num_joints: int = 17, weights: str | Path | None = None) -> SimpleBaseline:
    """SimpleBaseline-ResNet-50; ``weights``: optional initial weights file (user-given)."""
    model = SimpleBaseline(num_joints)
    if weights is not None:
        load_initial_weights(model, weights)
    return model
