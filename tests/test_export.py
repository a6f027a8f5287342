"""ONNX export: one checked, self-contained file with dynamic batch and H/W, equal to PyTorch."""

import pytest
import torch
import yaml

from compressflow import artifacts, files
from compressflow import config as cfg
from compressflow.errors import CompressflowError
from compressflow.runtimes import onnx as onnx_export
from tests.conftest import PARITY, REPO, digits_splits, export_onnx, save_untrained_resnet18


@pytest.fixture(scope="module")
def model_and_val(tmp_path_factory):
    """An (untrained, seeded) ResNet18 at 16 px: parity needs no accuracy."""
    d = tmp_path_factory.mktemp("export")
    save_untrained_resnet18(d)
    files.save_tensors(digits_splits()["val"], d / "val.pt")
    return d


def _step(d, out, **params):
    return export_onnx(d, out, **params)


def test_export_checks_simplifies_and_matches(model_and_val, tmp_path):
    import onnx

    out = _step(model_and_val, tmp_path)
    rep = files.read_json(out["report"])
    assert rep["check"]["checker"].startswith("passed")
    assert rep["simplify"]["used"] is True and rep["chosen"] == "model.sim.onnx"
    assert rep["parity"]["max_abs_diff"] < PARITY["max_abs_diff"] and rep["parity"]["top1_agreement"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "model.onnx"]  # no external data, no leftovers
    proto = onnx.load(str(out["onnx"]))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))  # batch, height, width dynamic
    model, _ = artifacts.load_model(model_and_val / "model.pt")
    x = torch.randn(3, 3, 32, 32)  # another batch and size than the export example
    sess = onnx_export.session(out["onnx"])
    with torch.no_grad():
        assert (onnx_export.run_onnx(sess, x) - model(x)).abs().max() < 1e-3


@pytest.mark.parametrize("opset", [17, 99])
def test_bad_opset_is_one_line_and_writes_nothing(model_and_val, tmp_path, opset):
    with pytest.raises(CompressflowError, match=rf"deploy.opset={opset} is not supported; fix: use an opset from 18 to") as err:
        _step(model_and_val, tmp_path, opset=opset)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_parity_over_tolerance_fails_clearly(model_and_val, tmp_path):
    with pytest.raises(CompressflowError, match="ONNX model differs from PyTorch"):
        _step(model_and_val, tmp_path, simplify=False, parity={"max_abs_diff": 1e-12, "min_top1_agreement": 0.99})
    assert not (tmp_path / "model.onnx").exists()


def test_failed_simplification_keeps_the_unsimplified_model(model_and_val, tmp_path, monkeypatch):
    import onnxsim

    def boom(*a, **k):
        raise RuntimeError("shape inference exploded")

    monkeypatch.setattr(onnxsim, "simplify", boom)
    out = _step(model_and_val, tmp_path)
    rep = files.read_json(out["report"])
    assert rep["simplify"] == {"used": False, "why": "onnxsim raised RuntimeError: shape inference exploded"}
    assert rep["chosen"] == "model.raw.onnx" and out["onnx"].stat().st_size > 1e6


def test_schema_rejects_old_opset():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    if "deploy" not in schema["properties"]:
        pytest.skip("deploy section not in config/schema.yaml yet")
    config = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    config["deploy"] = {"variants": ["fp32"], "opset": 17}
    with pytest.raises(CompressflowError, match=r"config key 'deploy.opset': value 17 out of range; allowed: minimum 18"):
        cfg.check_schema(config, REPO / "config" / "schema.yaml")
