"""Genotype: derivation from alphas, JSON round trip, clear errors for bad files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from autopose.config import ModelConfig
from autopose.errors import UserError
from autopose.search_space.cells import aggregation_edges, individual_edges
from autopose.search_space.genotype import (Genotype, check_compatible, derive_genotype,
                                            genotype_from_choices)


def tiny_cfg(**kw: object) -> ModelConfig:
    """Tiny search space: distinct small widths so resampling changes shapes."""
    base: dict[str, object] = {"branch_channels": [4, 6, 8, 10], "stem_channels": 8}
    base.update(kw)
    return ModelConfig(**base)  # type: ignore[arg-type]


VECTORS = [[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 1]]


def _alphas(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 6, generator=g), torch.randn(15, 6, generator=g)


def _genotype() -> Genotype:
    a, b = _alphas()
    return derive_genotype(a, b, tiny_cfg(), VECTORS)


def test_derive_keeps_k_strongest_edges_with_argmax_ops() -> None:
    cfg = tiny_cfg()
    a = torch.zeros(6, 6)
    # node 2 (edges 3, 4, 5): make edges 3 and 5 strong, with ops 1 and 4
    a[3, 1] = 5.0
    a[5, 4] = 3.0
    a[4, 2] = 1.0
    b = torch.zeros(15, 6)
    b[0, 5] = 4.0  # node 0 from scale0 via skip
    b[3, 0] = 2.0  # node 0 from scale3 via conv_1x1
    g = derive_genotype(a, b, replace(cfg, aggregation_edges_per_node=2), VECTORS,
                        edges_per_node=2)
    node2 = [(s, op) for i, s, op in g.individual.edges if i == 2]
    assert node2 == [("input", cfg.ops[1]), ("node1", cfg.ops[4])]
    assert [e for e in g.individual.edges if e[0] == 0] == [(0, "input", cfg.ops[0])]
    assert len(g.individual.edges) == 1 + 2 + 2
    node0 = [(s, op) for i, s, op in g.aggregation.edges if i == 0]
    assert node0 == [("scale0", "skip"), ("scale3", "conv_1x1")]
    assert len(g.aggregation.edges) == 3 * 2
    # By default aggregation cells keep every edge, whatever the individual cells' rule:
    # their sources are absolute scales, and top-2 would cut a branch off its own.
    g_ind = derive_genotype(a, b, cfg, VECTORS, edges_per_node=2)
    assert g_ind.individual.edges == g.individual.edges
    assert len(g_ind.aggregation.edges) == len(aggregation_edges(3, 4))
    g_all = derive_genotype(a, b, cfg, VECTORS, edges_per_node=0)
    assert len(g_all.individual.edges) == len(individual_edges(3))
    assert len(g_all.aggregation.edges) == len(aggregation_edges(3, 4))
    assert g_all.edges_per_node == 0


def test_round_trip(tmp_path: Path) -> None:
    g = _genotype()
    path = g.save(tmp_path / "genotype.json")
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert data["scale_vectors"] == VECTORS
    assert data["widths"] == [4, 6, 8, 10]
    assert data["ops"] == tiny_cfg().ops
    assert data["stages"] == 3 and data["modules_per_stage"] == 2
    back = Genotype.load(path)
    assert back == g
    assert back.to_dict() == data


def test_round_trip_concat_ablation(tmp_path: Path) -> None:
    cfg = tiny_cfg(aggregation="concat")
    g = genotype_from_choices(cfg, VECTORS, [0, 1, 2, 3, 4, 5], None)
    assert g.aggregation is None
    assert Genotype.load(g.save(tmp_path / "g.json")) == g


def _mutate(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    d = _genotype().to_dict()
    fn(d)
    return d


BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("newer version", lambda d: d.update(version=2), r"version: unsupported version 2"),
    ("no version", lambda d: d.pop("version"), r"version: missing"),
    ("unknown op", lambda d: d["ops"].__setitem__(0, "conv_9x9"), r"ops\[0\]: unknown operation"),
    ("unknown key", lambda d: d.update(colour="red"), r"colour: unknown key"),
    ("widths", lambda d: d.update(widths=[4, -6, 8, 10]), r"widths: expected a list of positive"),
    ("stages mismatch", lambda d: d.update(stages=4), r"scale_vectors: expected 4 vectors"),
    ("vector length", lambda d: d["scale_vectors"].__setitem__(1, [1, 0, 1]),
     r"scale_vectors\[1\]: expected 4 bits"),
    ("vector bits", lambda d: d["scale_vectors"].__setitem__(0, [1, 2, 0, 0]),
     r"scale_vectors\[0\]: expected 4 bits"),
    ("width_mult", lambda d: d.update(width_mult=0), r"width_mult: expected a positive number"),
    ("aggregation mode", lambda d: d.update(aggregation="sum"), r"aggregation: expected one of"),
    ("missing agg cell", lambda d: d.update(aggregation_cell=None),
     r"aggregation_cell: missing \(aggregation is 'cell'\)"),
    ("edge op not in set", lambda d: d["individual_cell"]["edges"][0].update(op="sep_conv_3x3"),
     r"individual_cell.edges\[0\].op: 'sep_conv_3x3' is not in the genotype's ops"),
    ("future node", lambda d: d["individual_cell"]["edges"][0].update(source="node2"),
     r"individual_cell.edges\[0\].source: 'node2' is not an input of node 0"),
    ("scale out of range", lambda d: d["aggregation_cell"]["edges"][0].update(source="scale4"),
     r"aggregation_cell.edges\[0\].source: 'scale4'"),
    ("scale in individual", lambda d: d["individual_cell"]["edges"][0].update(source="scale0"),
     r"individual_cell.edges\[0\].source"),
    ("node index", lambda d: d["individual_cell"]["edges"][0].update(node=7),
     r"individual_cell.edges\[0\].node: expected 0..2"),
    ("edge keys", lambda d: d["individual_cell"]["edges"][0].pop("op"),
     r"individual_cell.edges\[0\]: expected \{node, source, op\}"),
    ("duplicate edge", lambda d: d["individual_cell"]["edges"].append(
        dict(d["individual_cell"]["edges"][0])), r"duplicate edge"),
    ("orphan node", lambda d: d["individual_cell"].update(
        edges=[e for e in d["individual_cell"]["edges"] if e["node"] != 1]),
     r"individual_cell.edges: node 1 has no incoming edge"),
    ("nodes type", lambda d: d["aggregation_cell"].update(nodes="3"),
     r"aggregation_cell.nodes: expected an integer"),
]


@pytest.mark.parametrize("name,mutate,message", BAD, ids=[b[0] for b in BAD])
def test_malformed_genotype_names_file_and_field(tmp_path: Path, name: str,
                                                 mutate: Callable[[dict[str, Any]], None],
                                                 message: str) -> None:
    path = tmp_path / "genotype.json"
    path.write_text(json.dumps(_mutate(mutate)))
    with pytest.raises(UserError, match=message) as info:
        Genotype.load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"missing.json: genotype not found"):
        Genotype.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1,\n "ops": [')
    with pytest.raises(UserError, match=r"bad.json: not valid JSON \(line 2, column \d+\)"):
        Genotype.load(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(UserError, match=r"bad.json: top level must be a JSON object"):
        Genotype.load(bad)


def test_incompatible_with_config() -> None:
    g = _genotype()
    check_compatible(g, tiny_cfg())
    with pytest.raises(UserError, match=r"g.json: widths: \[4, 6, 8, 10\] does not match"):
        check_compatible(g, tiny_cfg(branch_channels=[8, 16, 32, 64]), "g.json")
    with pytest.raises(UserError, match=r"ops: .* does not match"):
        check_compatible(g, tiny_cfg(ops=["skip", "conv_3x3"]))
    with pytest.raises(UserError, match=r"aggregation_cell.nodes"):
        check_compatible(g, tiny_cfg(aggregation_nodes=4))
