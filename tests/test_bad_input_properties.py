"""Property tests: a mutated field of a valid file either loads with the same meaning or
stops with one line (a UserError naming the file), never a traceback or silent garbage.

Mutations: wrong types, NaN and infinity, empty and wrongly nested containers, a removed
key, and negative values where a field must not be negative. Starting points: the real
mmpose COCO sample and its detection file, a genotype, and the COCO 256x192 config. The
loaders are called directly, so each example takes milliseconds.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autopose.config import Config, SplitConfig, load_config
from autopose.data.coco import CocoSet, load_coco, load_detections
from autopose.errors import UserError
from autopose.search_space.genotype import Genotype
from bad_input_helpers import DELETE, set_path, tiny_genotype
from conftest import COCO_CONFIG

# Values no field of these files may hold (where a file name is a string, the string names
# no file): each mutant must be refused, or the field must be one nothing reads.
BAD = ["12.5", "", True, False, None, float("nan"), float("inf"), -float("inf"), [], {},
       [[1]], [None], ["1"], {"a": 1}, DELETE]
# Fields that must not be negative (a negative keypoint coordinate, say, is legal).
NON_NEGATIVE = {"width", "height", "area", "num_keypoints", "iscrowd"}

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document: keys, indices, containers and leaves alike."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _values_for(path: tuple[Any, ...], negatives: bool) -> list[Any]:
    keys = [k for k in path if isinstance(k, str)]
    negative = [-1] if negatives and keys and keys[-1] in NON_NEGATIVE else []
    # A ground-truth box's width and height, too (a detection box so made is skipped).
    if negatives and len(path) >= 2 and path[-2] == "bbox" and path[-1] in (2, 3):
        negative = [-1]
    values = BAD + negative
    if isinstance(path[-1], int):  # a list element cannot be deleted in place
        values = [v for v in values if v is not DELETE]
    return values


@st.composite
def mutants(draw: st.DrawFn, doc: Any, paths: list[tuple[Any, ...]],
            negatives: bool = True) -> tuple[Any, str]:
    path = draw(st.sampled_from(paths))
    value = draw(st.sampled_from(_values_for(path, negatives)))
    mutant = copy.deepcopy(doc)
    set_path(mutant, path, value)
    return mutant, f"{path} = {'<deleted>' if value is DELETE else repr(value)}"


def _loads_same_or_one_line(path: Path, text: str, load: Callable[[], Any], expected: Any,
                            mutation: str) -> None:
    """Write a mutant to ``path`` and load it: a one-line UserError naming ``path``, or what
    ``load`` returns equals ``expected`` (the original's meaning; None: anything loads)."""
    path.write_text(text)
    try:
        got = load()
    except UserError as e:
        assert "\n" not in str(e) and str(path) in str(e), str(e)
        return
    if expected is not None:
        assert got == expected, mutation


def _meaning(records: list) -> list[tuple]:
    return [(r.image_path, r.image_id, r.center.tolist(), r.scale.tolist(), r.joints.tolist(),
             r.vis.tolist(), r.box_score, r.ann_id,
             None if r.bbox is None else r.bbox.tolist()) for r in records]


@pytest.fixture(scope="module")
def cfg(mmpose_coco) -> Config:
    return load_config(COCO_CONFIG, [f"data.val.images={mmpose_coco['images']}",
                                     f"data.val.ann={mmpose_coco['ann']}"])


@pytest.fixture(scope="module")
def gt(cfg) -> CocoSet:
    return load_coco(cfg.data.val, cfg.data, quiet=True)


def _doc(path: str) -> Any:
    return json.loads(Path(path).read_text())


def test_coco_annotation_mutants(mmpose_coco, cfg, gt, tmp_path) -> None:
    doc = _doc(mmpose_coco["ann"])
    ann = tmp_path / "ann.json"
    split = SplitConfig(images=mmpose_coco["images"], ann=str(ann))

    @SETTINGS
    @given(mutants(doc, _paths(doc)))
    def check(m: tuple[Any, str]) -> None:
        _loads_same_or_one_line(
            ann, json.dumps(m[0]), lambda: _meaning(load_coco(split, cfg.data, quiet=True).records),
            _meaning(gt.records), m[1])

    check()


def test_detection_mutants(mmpose_coco, cfg, gt, tmp_path) -> None:
    dets = _doc(mmpose_coco["det"])
    baseline = _meaning(load_detections(mmpose_coco["det"], gt, cfg.data, quiet=True))
    det = tmp_path / "det.json"
    # The whole list and every field of the first entries (the rest are alike).
    paths = [p for p in _paths(dets) if p[0] < 4]

    @SETTINGS
    @given(mutants(dets, paths, negatives=False))
    def check(m: tuple[Any, str]) -> None:
        _loads_same_or_one_line(
            det, json.dumps(m[0]), lambda: _meaning(load_detections(det, gt, cfg.data, quiet=True)),
            baseline, m[1])

    check()


def test_genotype_mutants(tmp_path) -> None:
    doc = tiny_genotype().to_dict()
    path = tmp_path / "genotype.json"

    @SETTINGS
    @given(mutants(doc, _paths(doc)))
    def check(m: tuple[Any, str]) -> None:
        _loads_same_or_one_line(path, json.dumps(m[0]), lambda: Genotype.load(path).to_dict(),
                                doc, m[1])

    check()


def test_config_mutants(tmp_path) -> None:
    """Only "loads or one line": the ranges of config values are checked elsewhere."""
    doc = yaml.safe_load(Path(COCO_CONFIG).read_text())
    path = tmp_path / "config.yaml"

    @SETTINGS
    @given(mutants(doc, _paths(doc)))
    def check(m: tuple[Any, str]) -> None:
        _loads_same_or_one_line(path, yaml.safe_dump(m[0]),
                                lambda: isinstance(load_config(path), Config), True, m[1])

    check()
