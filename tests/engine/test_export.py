"""``autopose export --format onnx``: the ONNX model computes what the PyTorch model does."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from autopose.cli import main
from autopose.engine.checkpoint import load_model
from autopose.engine.export import TOLERANCE, run_export_command
from autopose.errors import UserError
from engine_fixtures import one_thread, tiny_checkpoint, tiny_genotype, tiny_set  # noqa: F401

# onnx and onnxruntime are in the test extra: where they are missing these tests fail
# (no importorskip), as the export must work wherever the tests run.


def test_onnx_export_matches_pytorch(tiny_checkpoint, tmp_path, one_thread, capsys):
    import onnx
    import onnxruntime as ort

    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "onnx",
                 "--out", str(out)]) == 0
    assert "max |diff|" in capsys.readouterr().out
    model_proto = onnx.load(str(out))
    onnx.checker.check_model(model_proto)
    meta = {p.key: p.value for p in model_proto.metadata_props}
    assert "nose" in meta["autopose.keypoints"] and "64" in meta["autopose.input"]
    assert meta["autopose.codec"].startswith("standard, sigma 2")
    # What autopose infer reads: the checkpoint's config and keypoint layout.
    assert meta["autopose.metadata_version"] == "2"
    assert json.loads(meta["autopose.config"])["data"]["input_size"] == [64, 48]
    assert json.loads(meta["autopose.keypoint_layout"])["flip_pairs"][0] == [1, 2]

    # An input the command did not check, and another batch size (the batch axis is dynamic).
    model, _ = load_model(tiny_checkpoint, torch.device("cpu"))
    x = torch.randn(3, 3, 64, 48, generator=torch.Generator().manual_seed(7)) * 2
    with torch.no_grad():
        want = model(x).numpy()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"images": x.numpy()})[0]
    assert got.shape == want.shape == (3, 17, 16, 12)
    assert np.max(np.abs(got - want)) <= TOLERANCE
    assert np.abs(want).max() > 1e-3  # a real comparison, not of two zero maps


def test_export_input_size_and_default_name(tiny_checkpoint, tmp_path, one_thread):
    ckpt = tmp_path / "copy.pt"
    ckpt.write_bytes(tiny_checkpoint.read_bytes())
    res = run_export_command(ckpt, "onnx", None, "96x64")
    assert Path(res["out"]) == tmp_path / "copy.onnx" and res["input"] == [96, 64]
    assert res["max_abs_diff"] <= TOLERANCE
    import onnxruntime as ort

    sess = ort.InferenceSession(res["out"], providers=["CPUExecutionProvider"])
    assert sess.run(None, {"images": np.zeros((1, 3, 96, 64), np.float32)})[0].shape == \
        (1, 17, 24, 16)
    # infer crops at the exported size, not the checkpoint's 64x48.
    config = json.loads(sess.get_modelmeta().custom_metadata_map["autopose.config"])
    assert config["data"]["input_size"] == [96, 64]


def test_export_refuses_bad_requests(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "tflite",
                 "--out", str(tmp_path / "m")]) == 2
    assert "--format: only onnx" in capsys.readouterr().err
    with pytest.raises(UserError, match="--input"):
        run_export_command(tiny_checkpoint, "onnx", tmp_path / "m.onnx", "big")
    # A size the heatmap codec cannot use is refused before the export, not read by infer.
    with pytest.raises(UserError, match="--input: data.input_size"):
        run_export_command(tiny_checkpoint, "onnx", tmp_path / "m.onnx", "66x48")
    # Without the packages: one line that says how to install them, exit code 2.
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    assert main(["export", "--checkpoint", str(tiny_checkpoint),
                 "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'autopose[export]'" in err and "\n" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_check_failure_writes_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    import autopose.engine.export as export

    monkeypatch.setattr(export, "check_onnx", lambda *a, **k: 0.5)
    with pytest.raises(UserError, match="export check failed.*0.5"):
        run_export_command(tiny_checkpoint, "onnx", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("head_fuse", ["concat", "sum"])
def test_every_search_space_op_exports(tmp_path, one_thread, head_fuse):
    """Pooling, separable and dilated convs, both head fusions (the CPU pooling fast path
    cannot be expressed in ONNX; the export must still match PyTorch)."""
    from autopose.config import load_config
    from autopose.data.keypoints import COCO17
    from autopose.engine.checkpoint import save_checkpoint
    from autopose.models.build import arch_for_genotype, build_model
    from autopose.search_space.genotype import CellGenotype, Genotype

    ops = ["conv_1x1", "conv_3x3", "conv_5x5", "avg_pool_3x3", "max_pool_3x3", "skip",
           "sep_conv_3x3", "dil_conv_3x3"]
    ind = CellGenotype(3, [(0, "input", "avg_pool_3x3"), (1, "input", "max_pool_3x3"),
                           (1, "node0", "conv_5x5"), (2, "node0", "sep_conv_3x3"),
                           (2, "node1", "dil_conv_3x3")])
    agg = CellGenotype(2, [(0, "scale0", "max_pool_3x3"), (0, "scale3", "avg_pool_3x3"),
                           (1, "scale1", "skip"), (1, "node0", "conv_3x3")])
    g = Genotype(ops=ops, widths=[4, 6, 8, 10], scale_vectors=[[1, 0, 1, 1], [1, 1, 1, 1]],
                 individual=ind, aggregation=agg, width_mult=1.0, stem_channels=8,
                 modules_per_stage=1, head_fuse=head_fuse)
    arch = arch_for_genotype(g, None, 17)
    torch.manual_seed(0)
    model = build_model(arch)
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for _ in range(2):
            model(torch.randn(2, 3, 64, 48) * 3 + 1)
    path = save_checkpoint(tmp_path / "all_ops.pt", model.eval(), load_config(None), arch,
                           COCO17, 0)
    res = run_export_command(path, "onnx", tmp_path / "all_ops.onnx", "64x48")
    assert res["max_abs_diff"] <= TOLERANCE
