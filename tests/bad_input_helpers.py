"""Helpers of the bad-input tests: a tiny genotype and checkpoint, and the one-line check.

Imported by name (``from bad_input_helpers import ...``), as ``conftest`` is: pytest puts
tests/ on the path of the test modules directly under it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autopose.config import load_config
from autopose.data.keypoints import COCO17
from autopose.engine.checkpoint import save_checkpoint
from autopose.models.build import arch_for_genotype, build_model
from autopose.search_space.cells import aggregation_edges, individual_edges
from autopose.search_space.genotype import Genotype, genotype_from_choices

# A 2-stage, 2-branch search space of a few channels: its networks build in milliseconds.
TINY_SPACE = ["model.branch_channels=[4,8]", "model.stem_channels=8", "model.num_stages=2",
              "model.modules_per_stage=1", "model.individual_nodes=2",
              "model.aggregation_nodes=1"]


def tiny_genotype() -> Genotype:
    """Every edge kept, the op of edge i the i-th of the op list (width_mult 2, the default)."""
    m = load_config(None, TINY_SPACE).model
    n_ops = len(m.ops)
    ind = [i % n_ops for i in range(len(individual_edges(m.individual_nodes)))]
    agg = [i % n_ops for i in range(len(aggregation_edges(m.aggregation_nodes,
                                                          len(m.branch_channels))))]
    return genotype_from_choices(m, [[1, 0], [1, 1]], ind, agg, width_mult=2.0)


def tiny_checkpoint(path: Path) -> Path:
    """An untrained 17-joint checkpoint of the tiny genotype at input 64x48 (no training:
    the bad-input cases stop before any prediction)."""
    cfg = load_config(None, TINY_SPACE + ["data.input_size=[64,48]", "data.workers=0",
                                          "test.flip=false"])
    arch = arch_for_genotype(tiny_genotype(), None, COCO17.num_joints)
    return save_checkpoint(path, build_model(arch), cfg, arch, COCO17, epoch=0)


def one_error_line(err: str) -> str:
    """The one ``autopose: error:`` line of ``err``; fails on a traceback or on two lines."""
    lines = [ln for ln in err.splitlines() if ln.startswith("autopose: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: equal before and after means nothing was
    written, overwritten or deleted (new empty folders aside)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def set_path(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    """``doc[path[0]][path[1]]... = value`` (a missing value ``DELETE`` removes the key)."""
    for key in path[:-1]:
        doc = doc[key]
    if value is DELETE:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


DELETE = object()
