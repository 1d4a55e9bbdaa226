"""The heatmap loss of the reference pose codebases."""

from __future__ import annotations

import torch


def joints_mse_loss(pred: torch.Tensor, target: torch.Tensor,
                    target_weight: torch.Tensor) -> torch.Tensor:
    """0.5 x mean squared error of heatmaps, each joint weighted by its target weight.

    pred, target ``(N, K, h, w)``; target_weight ``(N, K)``; scalar out. Equal to HRNet's
    JointsMSELoss (per joint 0.5 * MSE of weighted maps, averaged over joints).
    """
    w = target_weight[:, :, None, None].to(pred.dtype)
    return 0.5 * ((pred * w - target.to(pred.dtype) * w) ** 2).mean()
