"""Any model in: torchvision by name, the user's own module, the usual checkpoint shapes; and unsupported markers."""

import argparse
import json
import types
from pathlib import Path

import pytest
import torch
import yaml

from compressflow import artifacts, codedigest, config, models, recipes, smk, unsupported
from compressflow.errors import CompressflowError
from tests.conftest import REPO

USER_NET = """
import torch
from torch import nn


class Small(nn.Module):
    def __init__(self, num_classes, width=4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def build(num_classes, width=4):
    return Small(num_classes, width)
"""


@pytest.fixture
def user_code(tmp_path):
    pkg = tmp_path / "code" / "mynets"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "small.py").write_text(USER_NET)
    return tmp_path / "code"


def test_any_torchvision_classifier_by_name_rebuilds_from_its_recipe(tmp_path):
    torch.manual_seed(0)
    model = models.build("mobilenet_v3_small", 7).eval()
    assert type(model).__name__ == "MobileNetV3" and model.classifier[-1].out_features == 7
    artifacts.save_model(model, recipes.base_recipe("mobilenet_v3_small", 7), tmp_path / "m.pt")
    loaded, recipe = artifacts.load_model(tmp_path / "m.pt")
    x = torch.randn(2, 3, 32, 32)
    assert recipe["arch"] == "mobilenet_v3_small" and torch.equal(loaded(x), model(x))


TORCHVISION_WITHOUT_DYNAMO = """
import sys, torch
from compressflow import models
models.build("resnet18", 10)
assert "torchvision" in sys.modules and "torch._dynamo" not in sys.modules, "torch._dynamo was imported"
from torchvision.ops import roi_align  # calls torch._dynamo.utils.is_compile_supported: now the real one
out = roi_align(torch.rand(1, 1, 8, 8), [torch.tensor([[0.0, 0.0, 4.0, 4.0]])], 2)
import torch._dynamo
assert "torch._dynamo" in sys.modules and callable(torch._dynamo.reset) and out.shape == (1, 1, 2, 2)
"""


def test_building_a_torchvision_model_skips_the_dynamo_import_until_needed():
    """A job that builds a ResNet and never compiles skips torch._dynamo's ~1.3 s import; one that compiles gets the real module."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", TORCHVISION_WITHOUT_DYNAMO], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]


def test_unknown_architecture_names_close_matches():
    with pytest.raises(CompressflowError, match=r"models.a.arch: unknown architecture 'resnt50'.*did you mean resnet50"):
        models.check_arch("resnt50", "models.a.arch")
    with pytest.raises(CompressflowError, match="does not take arch_kwargs"):
        models.build("resnet18", 10, width_mult=0.5)


def test_user_module_builds_and_rebuilds_in_a_fresh_interpreter(user_code, tmp_path):
    model = models.build(None, 5, module="mynets.small:build", code_path=str(user_code), width=6).eval()
    assert model.conv.out_channels == 6
    recipe = recipes.base_recipe("mynets.small:build", 5, {"width": 6}, module="mynets.small:build", code_path=str(user_code))
    artifacts.save_model(model, recipe, tmp_path / "u.pt")
    # a later job is a fresh process: the recipe alone must bring the user's code back
    import subprocess
    import sys

    code = f"from compressflow import artifacts; m, r = artifacts.load_model({str(tmp_path / 'u.pt')!r}); print(type(m).__name__, m.conv.out_channels)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["Small", "6"]


def test_user_module_errors_are_one_line(user_code):
    with pytest.raises(CompressflowError, match="cannot import 'nonet.x'.*set code_path"):
        models.load_factory("nonet.x:build", str(user_code), "models.u.module")
    with pytest.raises(CompressflowError, match="has no callable 'make'"):
        models.load_factory("mynets.small:make", str(user_code), "models.u.module")
    with pytest.raises(CompressflowError, match="package.module:factory"):
        models.load_factory("mynets.small", str(user_code), "models.u.module")


def _state():
    torch.manual_seed(0)
    return models.build("resnet18", 10).state_dict()


def _prefixed(prefix, s):
    return {prefix + k: v for k, v in s.items()}


@pytest.mark.parametrize(
    "wrap,key",
    [
        (lambda s: s, None),
        (lambda s: {"state_dict": s, "epoch": 3}, None),
        (lambda s: {"model": s, "optimizer": {"lr": 0.1}, "epoch": 90}, None),
        (lambda s: _prefixed("module.", s), None),  # saved from DistributedDataParallel
        (lambda s: {"model": _prefixed("module.", s)}, None),
        (lambda s: {"ema": {"weights": s}, "model": {"other": torch.zeros(1)}}, "ema.weights"),
        # PyTorch Lightning: the LightningModule's attribute name, and other modules' weights beside it
        (lambda s: {"state_dict": _prefixed("model.", s), "epoch": 3, "optimizer_states": [{}]}, None),
        (lambda s: {"state_dict": {**_prefixed("model.", s), "criterion.weight": torch.ones(10)}}, None),
        (lambda s: _prefixed("_orig_mod.", s), None),  # torch.compile
        (lambda s: _prefixed("module._orig_mod.", s), None),  # DDP over torch.compile
        # timm's train.py: the trained weights first, the EMA copy (ModelEmaV2 wraps its model as `module`) on request
        (lambda s: {"state_dict": s, "state_dict_ema": _prefixed("module.", {k: v * 0 for k, v in s.items()})}, None),
        (lambda s: {"state_dict": {k: v * 0 for k, v in s.items()}, "state_dict_ema": _prefixed("module.", s)}, "state_dict_ema"),
        (lambda s: {"state_dict_ema": _prefixed("module.", s), "epoch": 9}, None),
        # torchvision's references/classification/train.py: model, model_ema (AveragedModel: n_averaged), argparse args
        (
            lambda s: {
                "model": s,
                "model_ema": {**_prefixed("module.", s), "n_averaged": torch.tensor(5)},
                "args": argparse.Namespace(lr=0.1),
            },
            None,
        ),
        (lambda s: {"model": {}, "model_ema": {**_prefixed("module.", s), "n_averaged": torch.tensor(5)}}, "model_ema"),
        # saved before BatchNorm counted its batches: torch loads it, and so do we
        (lambda s: {k: v for k, v in s.items() if not k.endswith("num_batches_tracked")}, None),
    ],
)
def test_training_script_checkpoints_load(tmp_path, wrap, key):
    state = _state()
    torch.save(wrap(state), tmp_path / "c.pt")
    loaded = recipes.read_state_dict(tmp_path / "c.pt", "models.r.checkpoint", key)
    model = models.build("resnet18", 10)
    recipes.load_state(model, loaded, "c.pt", num_classes=10)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]) or k.endswith("num_batches_tracked"), k


def test_a_model_whose_own_child_is_called_module_keeps_its_keys():
    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.module = torch.nn.Linear(3, 2)

    state = Wrapper().state_dict()
    model = Wrapper()
    recipes.load_state(model, state, "c.pt")
    assert torch.equal(model.module.weight, state["module.weight"])


def test_a_prefix_is_taken_with_a_note_and_the_knob_chooses_among_several():
    state, notes = _state(), []
    model = models.build("resnet18", 10)
    recipes.load_state(model, {"state_dict": 0} and _prefixed("model.", state), "c.pt", notes=notes)
    assert notes == [
        "'c.pt': its keys carry the prefix 'model.' (a wrapper's: DDP, EMA, torch.compile, Lightning); loaded the keys under it"
        " (set checkpoint_prefix: 'model.' to say so, or another value to choose)"
    ]
    both = {**_prefixed("student.", state), **_prefixed("teacher.", {k: v * 0 for k, v in state.items()})}
    with pytest.raises(
        CompressflowError, match=r"fit the model under several prefixes: 'student.', 'teacher.'; fix: set checkpoint_prefix"
    ):
        recipes.load_state(models.build("resnet18", 10), both, "c.pt")
    recipes.load_state(model, both, "c.pt", prefix="student.")
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    with pytest.raises(CompressflowError, match=r"no key of 'c.pt' starts with checkpoint_prefix 'net.'"):
        recipes.load_state(model, both, "c.pt", prefix="net.")


def test_keys_that_differ_by_a_prefix_name_the_knob_that_fixes_them():
    """Lightning keys with the classifier missing: nothing fits, and the error names checkpoint_prefix and its value."""
    partial = {k: v for k, v in _prefixed("model.", _state()).items() if not k.startswith("model.fc.")}
    with pytest.raises(CompressflowError, match=r"do not fit the architecture.*fix: set checkpoint_prefix: 'model.'"):
        recipes.load_state(models.build("resnet18", 10), partial, "c.pt", num_classes=10)


def test_a_torchscript_archive_is_named_as_such(tmp_path):
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "s.pt")
    with pytest.raises(CompressflowError, match=r"'.*s.pt' is a TorchScript archive \(torch.jit.save\).*torch.jit.load"):
        recipes.read_state_dict(tmp_path / "s.pt", "models.r.checkpoint")


def test_checkpoint_key_missing_names_the_keys(tmp_path):
    torch.save({"model": _state()}, tmp_path / "c.pt")
    with pytest.raises(CompressflowError, match=r"has no entry 'ema'.*top-level keys: \['model'\].*checkpoint_key"):
        recipes.read_state_dict(tmp_path / "c.pt", "models.r.checkpoint", "ema")


def test_class_count_and_key_mismatches_are_distinct_errors():
    state = models.build("resnet18", 5).state_dict()
    with pytest.raises(
        CompressflowError, match=r"'c.pt' was trained for 5 classes \('fc.weight' has shape \(5, 512\)\) but the dataset has 10"
    ):
        recipes.load_state(models.build("resnet18", 10), state, "c.pt", num_classes=10)
    other = models.build("mobilenet_v2", 10).state_dict()
    with pytest.raises(CompressflowError, match=r"'c.pt' do not fit the architecture \(\d+ missing keys \['conv1.weight'"):
        recipes.load_state(models.build("resnet18", 10), other, "c.pt", num_classes=10)


def test_config_accepts_arch_or_module(user_code):
    schema = REPO / "config" / "schema.yaml"
    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    cfg["models"] = {
        "mine": {"module": "mynets.small:build", "code_path": str(user_code), "train": {"epochs": 1, "lr": 0.1, "batch_size": 8}}
    }
    cfg["variants"], cfg["deploy"]["variants"] = {}, []
    config.check_schema(cfg, schema)
    config.check_models(cfg)
    cfg["models"]["mine"]["arch"] = "resnet18"
    with pytest.raises(CompressflowError, match="has both 'arch' and 'module'"):
        config.check_models(cfg)
    del cfg["models"]["mine"]["module"]
    with pytest.raises(CompressflowError, match="code_path is set without 'module'"):
        config.check_models(cfg)
    bad = {"models": {"x": {"train": {"epochs": 1, "lr": 0.1, "batch_size": 8}}}}
    with pytest.raises(CompressflowError, match="models.x"):
        config.check_schema({**cfg, **bad}, schema)


def test_user_code_digest_reads_source_files_only(tmp_path):
    """code_path: "." (the workflow directory): results/, logs/, hidden, VCS and venv folders and weights are not code."""
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "small.py").write_text("WIDTH = 4\n")
    (tmp_path / "classes.json").write_text("[1, 2]")
    before = codedigest.user_code_digest("nets.small:build", str(tmp_path))
    for folder in ("results/m/fp32", "logs/m", ".snakemake/metadata", ".git/objects", "venv/lib", "nets/__pycache__"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "x.py").write_text("changed = 1\n")
        (tmp_path / folder / "metrics.json").write_text("{}")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "weights.pt").write_bytes(b"\0" * 100)
    (tmp_path / "big.json").write_bytes(b"[" + b"0," * (1 << 20) + b"0]")
    assert codedigest.user_code_digest("nets.small:build", str(tmp_path)) == before
    (tmp_path / "classes.json").write_text("[1, 2, 3]")
    assert codedigest.user_code_digest("nets.small:build", str(tmp_path)) != before


def test_user_code_digest_follows_code_not_comments(user_code):
    before = codedigest.user_code_digest("mynets.small:build", str(user_code))
    src = user_code / "mynets" / "small.py"
    src.write_text(src.read_text() + "\n# a comment\n")
    assert codedigest.user_code_digest("mynets.small:build", str(user_code)) == before
    src.write_text(src.read_text().replace("width=4", "width=8"))
    assert codedigest.user_code_digest("mynets.small:build", str(user_code)) != before
    assert codedigest.user_code_digest("mynets.other:build", str(user_code)) != before


class _Smk:
    def __init__(self, rule, inputs, outputs, wildcards):
        self.rule, self.log, self.threads = rule, [], 1
        self.input = types.SimpleNamespace(items=lambda: inputs.items())
        self.output = types.SimpleNamespace(items=lambda: outputs.items())
        self.params = types.SimpleNamespace(items=lambda: {}.items())
        self.wildcards = types.SimpleNamespace(items=lambda: wildcards.items())


def test_unsupported_step_writes_markers_and_they_propagate(tmp_path, capsys):
    def step(inputs, outputs, params, threads):
        raise unsupported.Unsupported("fuse", "RowLSTM (no Conv2d followed by BatchNorm2d)", "needs BN", "drop fuse")

    out = {"model": str(tmp_path / "v" / "model.pt")}
    smk.run(_Smk("fuse", {}, out, {"model": "m", "variant": "v"}), step)
    assert "unsupported in rule fuse (model=m, variant=v): fuse does not support RowLSTM" in capsys.readouterr().err
    rec = unsupported.marker_of(out["model"])
    assert rec["reason"].startswith("fuse does not support RowLSTM") and rec["fix"] == "drop fuse"

    def must_not_run(*_):
        raise AssertionError("the step of an unsupported input must not run")

    down = {"metrics": str(tmp_path / "v" / "onnxruntime" / "metrics.json"), "onnx": str(tmp_path / "v" / "x.onnx")}
    smk.run(
        _Smk("evaluate_onnxruntime", {"onnx": out["model"]}, down, {"model": "m", "variant": "v", "runtime": "onnxruntime"}), must_not_run
    )
    metrics = json.loads((tmp_path / "v" / "onnxruntime" / "metrics.json").read_text())
    assert metrics["status"] == "unsupported" and metrics["runtime"] == "onnxruntime" and metrics["rule"] == "evaluate_onnxruntime"
    assert metrics["note"].startswith("unsupported: fuse does not support RowLSTM") and metrics["unsupported_input"] == out["model"]
    assert unsupported.marker_of(down["onnx"])["reason"] == rec["reason"]


def test_a_real_bug_fails_its_job_with_one_line_and_a_failure_record(tmp_path, monkeypatch, capsys):
    """Raised by compressflow's own code (here: this test's step): a bug, not "unsupported"; the run's end lists it."""
    from compressflow import failures

    monkeypatch.chdir(tmp_path)

    def step(inputs, outputs, params, threads):
        raise ValueError("a bug")

    with pytest.raises(SystemExit) as exited:
        smk.run(_Smk("fuse", {}, {"model": str(tmp_path / "model.pt")}, {"model": "m", "variant": "v"}), step)
    assert exited.value.code == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("compressflow: rule fuse (model=m, variant=v) failed: ValueError: a bug; a bug, please report it"), line
    assert not (tmp_path / "model.pt").exists()
    (rec,) = failures.since(0)
    assert rec["rule"] == "fuse" and rec["error"] == "ValueError: a bug" and rec["outputs"] == [str(tmp_path / "model.pt")]
    assert failures.summary_lines([rec]) == ["FAILED rule fuse (model=m, variant=v): ValueError: a bug"]
    # the same job run again and succeeding leaves no record behind
    smk.run(
        _Smk("fuse", {}, {"model": str(tmp_path / "model.pt")}, {"model": "m", "variant": "v"}),
        lambda i, o, p, t: Path(o["model"]).write_text("x"),
    )
    assert failures.since(0) == []


def test_an_exception_inside_the_library_a_technique_calls_is_unsupported_with_the_layer(tmp_path, monkeypatch, capsys):
    """Any failure inside the library (here torch, in a Linear's forward): the variant's row says unsupported,
    naming the layer, the library and its version; a rule that applies no technique still fails."""
    import torch

    monkeypatch.chdir(tmp_path)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))

    def step(inputs, outputs, params, threads):
        model(torch.zeros(1, 5))  # a shape the Linear cannot take, raised by torch itself

    out = {"model": str(tmp_path / "v" / "model.pt")}
    smk.run(_Smk("prune_channels", {}, out, {"model": "m", "variant": "v"}), step)
    rec = unsupported.marker_of(out["model"])
    assert rec["reason"].startswith("prune_channels does not support '1' (Linear): torch raised RuntimeError: mat1 and mat2"), rec
    assert (
        f"report it upstream to torch {torch.__version__.split('+')[0]}" in rec["fix"]
        and "leave model 'm' out of variant 'v'" in rec["fix"]
    )
    assert "unsupported in rule prune_channels (model=m, variant=v)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        smk.run(_Smk("train_baseline", {}, {"model": str(tmp_path / "fp32.pt")}, {"model": "m"}), step)


def test_an_exception_inside_torch_while_compressflow_loads_its_own_files_is_a_bug(tmp_path, monkeypatch, capsys):
    """torch raised it, but under recipes.load_state: a state dict compressflow handled wrongly (here: one that lost
    the _metadata quantized modules need) is a failure of the job, never an "unsupported" row that hides it."""
    monkeypatch.chdir(tmp_path)
    quantized = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 2)), {torch.nn.Linear})
    state = dict(quantized.state_dict())  # a plain dict: the module versions are gone

    def step(inputs, outputs, params, threads):
        fresh = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 2)), {torch.nn.Linear})
        recipes.load_state(fresh, state, "model.pt")

    out = {"model": str(tmp_path / "v" / "model.pt")}
    with pytest.raises(SystemExit):
        smk.run(_Smk("dynamic", {}, out, {"model": "m", "variant": "v"}), step)
    assert unsupported.marker_of(out["model"]) is None
    assert "failed: KeyError" in capsys.readouterr().err


def test_failure_lines_also_come_from_snakemakes_log():
    """A job that died without a record (killed for memory) still gets its closing line, once."""
    from compressflow import failures

    log = "Error in rule evaluate:\n    message: None\n    jobid: 3\n    log: logs/m/v/evaluate.log (check log file(s) for error details)\n"
    rec = {"rule": "ptq", "wildcards": {"model": "m", "variant": "q"}, "error": "KeyError: 'x'", "log": "logs/m/q/ptq.log"}
    log += "Error in rule ptq:\n    jobid: 4\n    log: logs/m/q/ptq.log (check log file(s) for error details)\n"
    assert failures.summary_lines([rec], log + log) == [
        "FAILED rule ptq (model=m, variant=q): KeyError: 'x' (log: logs/m/q/ptq.log)",
        "FAILED rule evaluate: see its log logs/m/v/evaluate.log",
    ]


TRAINING_WITHOUT_DYNAMO = """
import hashlib, sys, torch
from compressflow import models, train
if sys.argv[1] == "real":
    import torch._dynamo
train.seed_everything(0, 1)
model = models.build("resnet18", 3)
split = {"x": torch.randn(40, 3, 16, 16), "y": torch.arange(40) % 3}
train.fit(model, split, epochs=1, lr=0.05, batch_size=16, seed=0)
if sys.argv[1] == "stand-in":
    assert "torch._dynamo" not in sys.modules and "torch._inductor" not in sys.modules, "training imported torch._dynamo"
    import torch._dynamo
    assert callable(torch._dynamo.reset), "a later import gets the real module"
print(hashlib.sha256(b"".join(v.numpy().tobytes() for v in model.state_dict().values())).hexdigest())
"""


def test_training_skips_the_dynamo_import_with_the_same_bytes():
    """torch.optim and torch.use_deterministic_algorithms import torch._dynamo (~2 s per training job); training
    without it gives the same weights as with it."""
    import subprocess
    import sys

    digests = []
    for mode in ("stand-in", "real"):
        out = subprocess.run([sys.executable, "-c", TRAINING_WITHOUT_DYNAMO, mode], capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 0, out.stderr[-2000:]
        digests.append(out.stdout.split()[-1])
    assert digests[0] == digests[1]
