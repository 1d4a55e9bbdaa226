"""Drawings of a genotype: produced as PNG and not blank."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import torch

from autopose.config import ModelConfig
from autopose.search_space.genotype import derive_genotype, genotype_from_choices
from autopose.viz.architecture import draw_cell, draw_genotype, draw_network


def _check_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    gray = img[..., :3].mean(axis=-1)
    assert gray.var() > 1e-3, f"{path.name} looks blank"
    assert (gray < 0.5).mean() > 0.002, f"{path.name} has almost no dark pixels"
    return gray


def test_draw_genotype_writes_three_non_blank_pngs(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    genotype = derive_genotype(torch.randn(6, 6, generator=g), torch.randn(15, 6, generator=g),
                               ModelConfig(), [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    paths = draw_genotype(genotype, tmp_path / "drawings")
    assert set(paths) == {"network", "individual_cell", "aggregation_cell"}
    for p in paths.values():
        _check_png(p)
    assert not list((tmp_path / "drawings").glob("*.tmp"))  # atomic writes left nothing


def test_network_drawing_depends_on_scale_vectors(tmp_path: Path) -> None:
    cfg = ModelConfig()
    base = genotype_from_choices(cfg, [[1, 1, 1, 1]] * 3, [1] * 6, [1] * 15)
    other = genotype_from_choices(cfg, [[1, 0, 0, 0]] * 3, [1] * 6, [1] * 15)
    a = _check_png(draw_network(base, tmp_path / "a.png"))
    b = _check_png(draw_network(other, tmp_path / "b.png"))
    assert a.shape != b.shape or np.abs(a - b).mean() > 1e-3


def test_concat_ablation_draws_no_aggregation_cell(tmp_path: Path) -> None:
    cfg = ModelConfig(aggregation="concat")
    genotype = genotype_from_choices(cfg, [[0, 1, 1, 0]] * 3, [0, 1, 2, 3, 4, 5], None)
    paths = draw_genotype(genotype, tmp_path)
    assert set(paths) == {"network", "individual_cell"}
    _check_png(draw_cell(genotype.individual, tmp_path / "cell.png", "individual"))
