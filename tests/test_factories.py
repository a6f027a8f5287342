"""A user's factory is imported and called once before any job: each way it can be wrong is one line at parse time."""

import itertools

import pytest

from compressflow import config, models, modelspec
from compressflow.errors import CompressflowError

_names = itertools.count()

NET = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, num_classes, out=None):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, out or num_classes)

    def forward(self, x):
        {forward}

def build(num_classes, **kw):
    {build}
"""
POOLED = "return self.fc(self.conv(x).mean((2, 3)))"


def _package(tmp_path, forward=POOLED, build="return Net(num_classes, **kw)", name=None, source=None):
    """A fresh package (its own name: Python caches imported modules by name) holding ``net.py``."""
    name = name or f"userpkg{next(_names)}"
    pkg = tmp_path / "code" / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "net.py").write_text(source if source is not None else NET.replace("{forward}", forward).replace("{build}", build))
    return f"{name}.net:build", str(tmp_path / "code")


def _config(module, code_path, **spec):
    return {
        "dataset": {"preprocess": {"preset": "digits", "resize": [16, 16], "crop": None}},
        "evaluate": {"latency": {"input_size": 64}},
        "benchmark": {"input_size": 64},
        "models": {"mine": {"module": module, "code_path": code_path, **spec}},
    }


def _check(tmp_path, cfg, n_classes=10):
    config.check_factories(cfg, n_classes, cache=tmp_path / "factories.txt")


def test_a_good_factory_passes_once_and_is_not_called_again(tmp_path, monkeypatch):
    cfg = _config(*_package(tmp_path))
    _check(tmp_path, cfg)
    assert len((tmp_path / "factories.txt").read_text().split()) == 1
    monkeypatch.setattr(models, "build", lambda *a, **k: pytest.fail("a cached factory check built the model again"))
    _check(tmp_path, cfg)


@pytest.mark.parametrize(
    "forward, build, message",
    [
        # 1000 logits for 10 classes: top-5 would read 1.0
        (POOLED, "return Net(num_classes, out=1000)", r"forward of 2 images gives shape \[2, 1000\], not \[2, 10\].*num_classes=10"),
        ("return self.fc(self.conv(x).mean((2, 3))), x", "return Net(num_classes)", r"forward returns tuple, not a logits tensor"),
        (POOLED, "return (Net(num_classes),)", r"returned tuple, not a torch.nn.Module"),
        (POOLED, "raise TypeError('width must be even')", r"raised TypeError inside the factory: width must be even \(.*net.py:\d+\)"),
        # only takes the size it was trained at: the latency sizes are named with the value that fits
        (
            "return self.fc(self.conv(x).flatten(1)[:, :4] if x.shape[-1] == 16 else self.conv(x).view(2, 4, 16, 16))",
            "return Net(num_classes)",
            r"does not take 64 px inputs \(evaluate.latency.input_size: RuntimeError.*fix: set evaluate.latency.input_size: 16",
        ),
    ],
)
def test_a_wrong_factory_is_one_line_before_any_job(tmp_path, forward, build, message):
    with pytest.raises(CompressflowError, match=message) as exc:
        _check(tmp_path, _config(*_package(tmp_path, forward, build)))
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "factories.txt").exists()


def test_a_typeerror_inside_the_factory_is_not_blamed_on_arch_kwargs(tmp_path):
    module, code_path = _package(tmp_path, build="return Net(num_classes, **kw) + 1")
    with pytest.raises(CompressflowError, match=r"raised TypeError inside the factory") as exc:
        models.build(None, 10, module=module, code_path=code_path)
    assert "arch_kwargs" not in str(exc.value)
    with pytest.raises(
        CompressflowError, match=r"cannot be called as factory\(num_classes=..., \*\*arch_kwargs\) with arch_kwargs \['depth'\]"
    ):
        module, code_path = _package(tmp_path / "b", build="return Net(num_classes)")
        source = (
            (tmp_path / "b" / "code" / module.split(".")[0] / "net.py")
            .read_text()
            .replace("def build(num_classes, **kw)", "def build(num_classes)")
        )
        (tmp_path / "b" / "code" / module.split(".")[0] / "net.py").write_text(source)
        models.build(None, 10, module=module, code_path=code_path, depth=3)


@pytest.mark.parametrize(
    "source, message",
    [
        ("def build(num_classes:\n    pass\n", r"syntax error in .*net.py:1: .*fix: correct that line"),
        (
            "import not_installed_anywhere_xyz\n",
            r"needs 'not_installed_anywhere_xyz', which is not installed.*fix: install 'not_installed_anywhere_xyz'",
        ),
        ("raise RuntimeError('no GPU here')\n", r"importing it raised RuntimeError: no GPU here \(.*net.py:1\)"),
    ],
)
def test_a_user_module_that_cannot_import_says_why(tmp_path, source, message):
    module, code_path = _package(tmp_path, source=source)
    with pytest.raises(CompressflowError, match=message) as exc:
        modelspec.load_factory(module, code_path, "models.mine.module")
    assert "set code_path" not in str(exc.value)


@pytest.mark.parametrize("name", ["yaml", "torch"])
def test_a_user_package_named_like_an_installed_one_is_named(tmp_path, name):
    """A package called `yaml` or `torch` would import the installed one (or half of each)."""
    import importlib

    importlib.import_module(name)
    module, code_path = _package(tmp_path, name=name)
    with pytest.raises(
        CompressflowError, match=rf"your package '{name}' has the name of one already imported from .*fix: rename the folder"
    ):
        modelspec.load_factory(module, code_path, "models.mine.module")
