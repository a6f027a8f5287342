"""Model names and user factories, checked without torch (``rules/common.smk`` checks configs at parse time).

Standard library only until a user module is imported (that module brings its own imports).
"""

from __future__ import annotations

import difflib
import importlib
import sys
from pathlib import Path

from compressflow.errors import CompressflowError

OWN_ARCHS = ("lstm",)
# Names checked without importing torchvision (parsing the common configs stays fast).
KNOWN_TORCHVISION = ("resnet18", "mobilenet_v2")


def torchvision_archs() -> list[str]:
    """The classification models torchvision builds by name (not detection/segmentation/video)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def check_arch(arch: str, where: str) -> None:
    """A one-line error for an architecture name nothing builds, listing close matches."""
    if arch in OWN_ARCHS or arch in KNOWN_TORCHVISION:
        return
    names = [*OWN_ARCHS, *torchvision_archs()]
    if arch in names:
        return
    close = difflib.get_close_matches(arch, names, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models(module=torchvision.models)"
    raise CompressflowError(
        f"{where}: unknown architecture '{arch}' (not a torchvision classification model nor 'lstm')",
        f"{hint} Or build your own with module: 'package.module:factory' and code_path",
    )


def add_code_path(code_path: str | None) -> None:
    """Put the user's code folder first on sys.path (idempotent)."""
    if code_path:
        path = str(Path(code_path).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)


def load_factory(module: str, code_path: str | None, where: str = "module"):
    """The callable named by ``package.module:factory`` (its folder, ``code_path``, goes on sys.path)."""
    mod_name, sep, fn_name = module.partition(":")
    if not sep or not mod_name or not fn_name:
        raise CompressflowError(f"{where} '{module}' is not of the form 'package.module:factory'", "write it as e.g. 'mynets.small:build'")
    add_code_path(code_path)
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        raise CompressflowError(
            f"{where} '{module}': cannot import '{mod_name}' ({exc})",
            f"set code_path to the folder that holds '{mod_name.split('.')[0]}' (now: {code_path!r})",
        ) from exc
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise CompressflowError(
            f"{where} '{module}': '{mod_name}' has no callable '{fn_name}'", "name a function or class that builds the model"
        )
    return fn
