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


def import_torchvision():
    """``import torchvision``, without the import of ``torch._dynamo`` that only ``torchvision.ops.roi_align`` asks for.

    roi_align does ``from torch._dynamo.utils import is_compile_supported`` at import time and calls it only
    when RoIAlign runs. Importing torch._dynamo takes about 1.3 s, half the start-up of a job that builds a
    ResNet and never compiles (most jobs; measured in benchmarks/pipeline_time.csv's runs). While torchvision
    imports, a stand-in supplies that one name and defers the real import to its first call; the stand-in is
    then removed, so a later ``import torch._dynamo`` (torch.compile, torch.export, torchao) loads the real
    module. If the stand-in is not enough (a torchvision that asks for more), torchvision is imported plainly.
    """
    if "torchvision" in sys.modules or "torch._dynamo" in sys.modules:
        import torchvision

        return torchvision

    from compressflow import nodynamo

    def is_compile_supported(device_type):
        from torch._dynamo.utils import is_compile_supported as real

        return real(device_type)

    try:
        with nodynamo.stand_in(utils={"is_compile_supported": is_compile_supported}):
            import torchvision
    except Exception:
        torchvision = None
    if torchvision is None:  # start again without the stand-in
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        import torchvision
    return torchvision


def torchvision_archs() -> list[str]:
    """The classification models torchvision builds by name (not detection/segmentation/video)."""
    torchvision = import_torchvision()
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
    top = mod_name.split(".")[0]
    if code_path and (Path(code_path) / top).is_dir() and top in sys.modules:
        origin = getattr(sys.modules[top], "__file__", None) or "an installed package"
        if _installed(origin):
            raise CompressflowError(
                f"{where} '{module}': your package '{top}' has the name of one already imported from '{origin}'",
                f"rename the folder '{Path(code_path) / top}' (and the module name) to something no installed package uses",
            )
    add_code_path(code_path)
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and missing.split(".")[0] != top:
            raise CompressflowError(
                f"{where} '{module}': importing it needs '{missing}', which is not installed ({exc})",
                f"install '{missing.split('.')[0]}' into this environment (and add it to the conda env of the rules)",
            ) from exc
        raise CompressflowError(
            f"{where} '{module}': cannot import '{mod_name}' ({exc})",
            f"set code_path to the folder that holds '{top}' (now: {code_path!r})",
        ) from exc
    except SyntaxError as exc:
        raise CompressflowError(
            f"{where} '{module}': syntax error in {exc.filename}:{exc.lineno}: {exc.msg}", "correct that line of your module"
        ) from exc
    except Exception as exc:
        raise CompressflowError(
            f"{where} '{module}': importing it raised {type(exc).__name__}: {exc} ({user_frame(exc)})", "fix your module's top-level code"
        ) from exc
    origin = getattr(mod, "__file__", None)
    if code_path and origin and _installed(origin):
        raise CompressflowError(
            f"{where} '{module}': '{mod_name}' was imported from '{origin}', not from code_path '{code_path}': an installed package has its name",
            f"rename your package '{top}' to something no installed package uses",
        )
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise CompressflowError(
            f"{where} '{module}': '{mod_name}' has no callable '{fn_name}'", "name a function or class that builds the model"
        )
    return fn


def user_frame(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of the traceback (where the user's code raised)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"


def _installed(origin: str) -> bool:
    """Whether a module file belongs to the Python installation (site-packages or the standard library)."""
    if origin == "an installed package":
        return True
    path = str(Path(origin).resolve())
    return "-packages/" in path or path.startswith(str(Path(sys.base_prefix).resolve()) + "/")
