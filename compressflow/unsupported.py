"""Known, expected incompatibilities of a technique with an architecture: they fail one variant, not the run.

A step raises :class:`Unsupported` only for a limitation it recognises (a specific exception type and
message from the library it calls, or a layer type it knows it cannot handle). ``compressflow.smk.run``
then writes every output of the job as an *unsupported marker* instead of failing it: JSON outputs get
``{"status": "unsupported", "reason": ...}`` (metrics files carry null numbers, so the report shows a row
saying so), other files one text line starting with :data:`MARKER`. A job whose input is such a marker
writes markers too, so every downstream variant and runtime row of an unsupported variant says so.
Anything else (a real bug) still fails the job loudly.
"""

from __future__ import annotations

import json
from pathlib import Path

from compressflow import files
from compressflow.errors import one_line

MARKER = b"compressflow-unsupported: "
STATUS = "unsupported"


class Unsupported(Exception):
    """``technique`` cannot handle ``layer`` (a module name or an op) of this architecture; ``fix`` says what to use instead."""

    def __init__(self, technique: str, layer: str, why: str, fix: str):
        self.technique, self.layer, self.why, self.fix = technique, one_line(layer), one_line(why), one_line(fix)
        self.reason = f"{technique} does not support {self.layer}: {self.why}"
        super().__init__(f"{self.reason}; fix: {self.fix}")


def first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip()
    return one_line(text.splitlines()[0] if text else type(exc).__name__)[:limit]


def record(reason: str, fix: str, source: str | None = None) -> dict:
    """The JSON written for an unsupported job (metrics files get these keys next to null numbers)."""
    out = {"status": STATUS, "reason": reason, "fix": fix}
    if source:
        out["unsupported_input"] = source
    return out


def marker_of(path) -> dict | None:
    """The unsupported record a job output holds, or None for a real artifact (also for a missing/unreadable file)."""
    path = Path(path)
    try:
        if not path.is_file():
            return None
        if path.suffix == ".json":
            if path.stat().st_size > 1 << 20:
                return None
            record_ = json.loads(path.read_text())
            return record_ if isinstance(record_, dict) and record_.get("status") == STATUS else None
        with open(path, "rb") as f:
            head = f.read(len(MARKER))
            if head != MARKER:
                return None
            return json.loads(f.read(1 << 16).decode())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def unsupported_input(inputs: dict) -> tuple[str, dict] | None:
    """(path, record) of the first input that is an unsupported marker."""
    for value in inputs.values():
        for path in value if isinstance(value, (list, tuple)) else [value]:
            rec = marker_of(path)
            if rec is not None:
                return str(path), rec
    return None


def write_markers(outputs: dict, reason: str, fix: str, source: str | None = None, extra_json: dict | None = None) -> None:
    """Every output of the job as an unsupported marker (provenance is written by the caller afterwards)."""
    rec = record(reason, fix, source)
    for key, value in outputs.items():
        if key == "provenance":
            continue
        for path in value if isinstance(value, (list, tuple)) else [value]:
            path = Path(path)
            if path.suffix == ".json":
                files.write_json({**(extra_json or {}), **rec} if key == "metrics" else rec, path)
            else:
                with files.atomic_path(path) as tmp:
                    tmp.write_bytes(MARKER + json.dumps(rec, sort_keys=True).encode() + b"\n")


# compressflow's own file handling (artifacts, recipes, splits, hashes): an exception under these is a bug in
# compressflow even when torch raised it (a state dict it saved wrongly), never "unsupported".
OWN_IO_MODULES = frozenset({"artifacts.py", "recipes.py", "files.py", "verify.py", "provenance.py", "data.py", "smk.py"})
# Rules that apply no technique or runtime to a model: any exception there is a failure, never "unsupported".
NOT_A_TECHNIQUE = frozenset({"prepare_data", "train_baseline", "make_report", "collect_benchmarks", "record_environment"})
_OURS = tuple(str(Path(__file__).resolve().parent.parent / d) + "/" for d in ("compressflow", "scripts", "tests", "benchmarks"))


def _stdlib_dirs() -> tuple[str, ...]:
    import sysconfig

    paths = sysconfig.get_paths()
    return tuple({str(Path(paths[k]).resolve()) + "/" for k in ("stdlib", "platstdlib")})


def _package_of(filename: str) -> str | None:
    """The distribution-level package of a file under site-packages/dist-packages, e.g. ``torch_pruning``."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            rest = parts[parts.index(marker) + 1 :]
            return rest[0].removesuffix(".py") if rest else None
    return None


def from_exception(exc: BaseException, rule: str, wildcards: dict, log=None) -> Unsupported | None:
    """An exception raised inside the library a technique or runtime calls, or inside the model's own forward,
    while this rule applied it: the technique cannot handle this model, a limitation, not our bug.

    The innermost frame outside the standard library decides: a library (site-packages) or a module's
    ``forward`` outside compressflow means *unsupported*; compressflow's own code means a bug (None).
    The layer is the innermost ``nn.Module`` seen in the failing frames, named within the outermost one.
    """
    if rule in NOT_A_TECHNIQUE or not isinstance(exc, Exception):
        return None
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    stdlib = _stdlib_dirs()
    ours = [f for f in frames if str(Path(f.f_code.co_filename).resolve()).startswith(_OURS)]
    if ours and Path(ours[-1].f_code.co_filename).name in OWN_IO_MODULES:
        return None  # raised while compressflow read or wrote its own files: a bug, whichever library it went through
    culprit = None
    for frame in reversed(frames):
        name = str(Path(frame.f_code.co_filename).resolve())
        if name.startswith(stdlib) and "-packages/" not in name:
            continue
        culprit = frame
        break
    if culprit is None:
        return None
    filename = str(Path(culprit.f_code.co_filename).resolve())
    package = _package_of(filename)
    model_code = package is None and not filename.startswith(_OURS) and _is_module(culprit.f_locals.get("self"))
    if package is None and not model_code:
        return None
    where = package or f"the model's own code ({Path(filename).name}: {culprit.f_code.co_name})"
    layer = _layer(frames)
    version = _version(package) if package else ""
    model, variant = wildcards.get("model", "?"), wildcards.get("variant", "?")
    fix = (
        f"leave model '{model}' out of variant '{variant}' (give the variant a models: list without it), "
        f"or report it upstream to {package}{' ' + version if version else ''}; the full traceback is in {log or 'the job log'}"
        if package
        else f"leave model '{model}' out of variant '{variant}' (give the variant a models: list without it), "
        f"or make the model's forward work after {rule}; the full traceback is in {log or 'the job log'}"
    )
    why = f"{where} raised {type(exc).__name__}: {first_line(exc)}"
    return Unsupported(rule, layer, why, fix)


def _is_module(obj) -> bool:
    try:
        import torch

        return isinstance(obj, torch.nn.Module)
    except ImportError:
        return False


def _layer(frames) -> str:
    """``'name' (Type)`` of the innermost module among the frames' locals, or ``the model`` when none is seen."""
    modules = []
    for frame in frames:
        for value in list(frame.f_locals.values()):
            if _is_module(value) and all(value is not m for m in modules):
                modules.append(value)
    if not modules:
        return "the model"
    inner = modules[-1]
    for outer in modules[:-1]:
        for name, sub in outer.named_modules():
            if sub is inner:
                return f"'{name}' ({type(inner).__name__})" if name else type(inner).__name__
    return type(inner).__name__


def _version(package: str) -> str:
    from importlib import metadata

    for name in (package, package.replace("_", "-")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return ""
