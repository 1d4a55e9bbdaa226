"""AutoPose: neural architecture search for multi-branch, multi-scale 2D human pose estimation.

The package mirrors the paper: ``data`` (keypoint metadata, datasets, transforms, heatmap
codec, synthetic set), ``evaluation`` (OKS, OKS-NMS, COCOeval, PCKh), ``search_space`` (ops,
individual and aggregation cells, multi-scale modules, supernet, genotype), ``models``
(derived network, baselines), ``search`` (controller, bi-level loop, derivation, random
search), ``engine`` (training, testing, checkpoints, distributed), ``viz``.
"""

__version__ = "0.1.0"
