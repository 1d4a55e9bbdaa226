"""Fixtures of the engine tests: a tiny synthetic set, a tiny genotype, tiny configs, and a
checkpoint trained for one epoch on them (seconds on one CPU core).

Test modules import the fixtures by name (``from engine_fixtures import tiny_set``): a
``conftest.py`` here would shadow ``tests/conftest.py``, which other modules import as
``conftest``. Imported into several modules, a session fixture would run once per module,
so the expensive ones memoise their result in ``_CACHE``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
_CACHE: dict[str, Path] = {}

# A 2-stage, 3-branch genotype with a handful of channels: 30k parameters.
TINY_GENOTYPE = {
    "version": 1,
    "ops": ["conv_1x1", "conv_3x3", "conv_5x5", "avg_pool_3x3", "max_pool_3x3", "skip"],
    "widths": [8, 12, 16], "width_mult": 1.0, "stem_channels": 8, "stages": 2,
    "modules_per_stage": 1, "scale_vectors": [[1, 1, 0], [1, 1, 1]], "aggregation": "cell",
    "head_fuse": "concat", "edges_per_node": 2,
    "individual_cell": {"nodes": 2, "edges": [
        {"node": 0, "source": "input", "op": "conv_3x3"},
        {"node": 1, "source": "input", "op": "skip"},
        {"node": 1, "source": "node0", "op": "conv_1x1"}]},
    "aggregation_cell": {"nodes": 1, "edges": [
        {"node": 0, "source": "scale0", "op": "skip"},
        {"node": 0, "source": "scale1", "op": "skip"},
        {"node": 0, "source": "scale2", "op": "conv_1x1"}]},
}


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m autopose`` in a subprocess: the source tree importable, one
    OpenMP thread (runs compared bit for bit use the same count; on a busy 2-core machine two
    spinning threads are also far slower than one)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


@pytest.fixture
def one_thread():
    """Run the test body with one torch thread (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 train and 8 val synthetic images of 160x120 (about 60 and 25 people)."""
    from autopose.data.synthetic import generate

    if "set" not in _CACHE:
        _CACHE["set"] = generate(tmp_path_factory.mktemp("tiny") / "syn", 24, 8, 0, [160, 120])
    return _CACHE["set"]


@pytest.fixture(scope="session")
def tiny_genotype(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from autopose.search_space.genotype import Genotype

    if "genotype" not in _CACHE:
        path = tmp_path_factory.mktemp("geno") / "genotype.json"
        Genotype.from_dict(TINY_GENOTYPE).save(path)
        _CACHE["genotype"] = path
    return _CACHE["genotype"]


def write_tiny_config(path: Path, data_root: Path, **train: object) -> Path:
    """A config on the tiny set at input 64x48, batch 8 (7 batches an epoch), no workers."""
    t = {"epochs": 2, "batch_size": 8, "lr": 2e-3, "lr_steps": [1], "val_every": 1,
         "checkpoint_every": 0, "log_every": 2}
    t.update(train)
    cfg = {
        "seed": 0,
        "data": {"format": "coco", "input_size": [64, 48], "workers": 0,
                 "train": {"images": str(data_root / "images" / "train"),
                           "ann": str(data_root / "person_keypoints_train.json")},
                 "val": {"images": str(data_root / "images" / "val"),
                         "ann": str(data_root / "person_keypoints_val.json")}},
        "train": t,
        "test": {"batch_size": 16},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _trained_once(key: str, tmp_path_factory: pytest.TempPathFactory, tiny_set: Path,
                  tiny_genotype: Path, name: str, **train_fields: object) -> Path:
    """Train the tiny genotype on the tiny set once per session (one thread); ``name`` is the
    checkpoint file of the run folder to return."""
    from autopose.engine.trainer import train
    from autopose.models.build import ArchSource

    if key not in _CACHE:
        root = tmp_path_factory.mktemp(key)
        cfg = write_tiny_config(root / "tiny.yaml", tiny_set, **train_fields)
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            train(cfg, [], ArchSource(genotype=tiny_genotype), root / "run", progress=False)
        finally:
            torch.set_num_threads(before)
        _CACHE[key] = root / "run" / name
    return _CACHE[key]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_set: Path,
                    tiny_genotype: Path) -> Path:
    """best.pt of a one-epoch run on the tiny set (17 COCO joints, input 64x48)."""
    return _trained_once("ckpt", tmp_path_factory, tiny_set, tiny_genotype, "best.pt", epochs=1)


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_set: Path,
                       tiny_genotype: Path) -> Path:
    """last.pt of a five-epoch run on the tiny set at a constant learning rate (2 s on one core).

    One epoch leaves every joint's heatmap peaking at the same pixel (the heads start at HRNet's
    std 1e-3 and barely move), and best.pt stays at epoch 1 while the val AP is 0. After five
    epochs the joints' peaks are apart, which a test of where joints are drawn needs.
    """
    return _trained_once("trained", tmp_path_factory, tiny_set, tiny_genotype, "last.pt",
                         epochs=5, lr_steps=[6])
