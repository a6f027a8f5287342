"""The code digest of a rule: a hash of the library source its script can reach.

Every rule's script is a thin shim that calls one step in ``compressflow``, so Snakemake's own
``code`` trigger (which sees the script) misses a change in the library. The Snakefile gives each
rule the digest of its script's *import closure* as a param, and Snakemake's ``params`` trigger then
reruns exactly the jobs whose reachable library code changed.

- The closure is read statically with :mod:`ast`, without importing anything (parsing stays free of
  torch, so a no-op ``snakemake -n`` stays fast). It follows ``import compressflow...`` and
  ``from compressflow... import ...`` statements anywhere in a module (function-level imports too),
  relative imports, the ``__init__`` of every package on the way, and string references of the form
  ``"compressflow.pkg.module:function"`` (how :mod:`compressflow.recipes` names its rebuilders).
- Each module counts by its *normalised* source: ``ast.dump`` of the tree with docstrings removed,
  so comments, docstrings and formatting (e.g. ``ruff format``) change nothing.
- Standard library only: this module is imported by ``rules/common.smk`` at parse time.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
from functools import cache
from pathlib import Path

PACKAGE = "compressflow"
_STRING_REF = re.compile(rf"^({PACKAGE}(?:\.\w+)*)(?::\w+)?$")


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalised(source: str) -> str:
    """The source as ``ast.dump`` without docstrings: equal for sources that differ only in comments, docstrings or layout."""
    return ast.dump(_strip_docstrings(ast.parse(source)), annotate_fields=True, include_attributes=False)


class Library:
    """The modules of one package on disk, addressed by dotted name (``compressflow.quantize.static``)."""

    def __init__(self, root: Path, package: str = PACKAGE):
        self.root, self.package = Path(root), package

    def path(self, module: str) -> Path | None:
        parts = module.split(".")
        if parts[0] != self.package:
            return None
        base = self.root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def is_package(self, module: str) -> bool:
        path = self.path(module)
        return path is not None and path.name == "__init__.py"

    def with_parents(self, module: str) -> list[str]:
        """``a.b.c`` and the packages Python initialises before it (``a``, ``a.b``) that exist here."""
        parts = module.split(".")
        return [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if self.path(m)]


def imports(tree: ast.AST, module: str, lib: Library) -> set[str]:
    """The library modules a parsed module (``module``, its dotted name; None for a script) imports."""
    found: set[str] = set()
    here_pkg = None
    if module is not None:
        here_pkg = module if lib.is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(lib.with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if here_pkg is None:
                    continue
                base_parts = here_pkg.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.update(lib.with_parents(base))
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                if lib.path(f"{base}.{alias.name}"):
                    found.update(lib.with_parents(f"{base}.{alias.name}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            ref = _STRING_REF.match(node.value)
            if ref:
                found.update(lib.with_parents(ref.group(1)))
    return {m for m in found if lib.path(m)}


@cache
def _parsed(path: Path, mtime_ns: int) -> tuple[ast.AST, str]:
    source = path.read_text()
    tree = ast.parse(source)
    return tree, hashlib.sha256(normalised(source).encode()).hexdigest()


def _parse(path: Path) -> tuple[ast.AST, str]:
    return _parsed(path, path.stat().st_mtime_ns)


_CACHE_FORMAT = 1


def load_cache(path) -> None:
    """Reuse digests and imports computed by an earlier parse (keyed by file, mtime and size), so a no-op
    ``snakemake -n`` parses no library source. A missing or unreadable cache only costs the parse."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
        return
    for row in data.get("modules", []):
        root, module, mtime, size, digest, deps = row
        _DISK[(root, module, mtime, size)] = (digest, frozenset(deps))


def save_cache(path) -> None:
    rows = [[*key, digest, sorted(deps)] for key, (digest, deps) in sorted(_DISK.items())]
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": _CACHE_FORMAT, "modules": rows}))
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only working directory: the next parse recomputes


_DISK: dict = {}


def _module_imports(module: str, lib: Library) -> tuple[str, frozenset]:
    """(digest, imported library modules) of one module, computed once per file version: every rule's closure shares them."""
    path = lib.path(module)
    st = path.stat()
    key = (str(lib.root), module, st.st_mtime_ns, st.st_size)
    if key not in _DISK:
        tree, digest = _parse(path)
        _DISK[key] = (digest, frozenset(imports(tree, module, lib)))
    return _DISK[key]


def closure(script: Path, lib: Library) -> dict[str, str]:
    """Every library module ``script`` can reach, with the digest of its normalised source."""
    tree, _ = _parse(Path(script))
    todo = sorted(imports(tree, None, lib))
    seen: dict[str, str] = {}
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        digest, deps = _module_imports(module, lib)
        seen[module] = digest
        todo.extend(m for m in deps if m not in seen)
    return dict(sorted(seen.items()))


def script_digest(script, library_root) -> str:
    """The code digest of one rule's script: 16 hex characters over its closure's module digests."""
    modules = closure(Path(script), Library(Path(library_root)))
    h = hashlib.sha256()
    for name, digest in modules.items():
        h.update(f"{name} {digest}\n".encode())
    return h.hexdigest()[:16]


def packages_digest(cache_path=None) -> str:
    """A digest of :func:`compressflow.sysinfo.installed_packages` (the ``record_environment`` rule's param), reused from ``cache_path`` while no ``sys.path`` folder changed.

    Installing, upgrading or removing a distribution changes its site-packages folder's mtime, so the
    cache key (each folder's path and mtime) changes with it; reading every distribution's metadata
    otherwise costs about 0.3 s of every ``snakemake`` start.
    """
    import sys

    from compressflow.sysinfo import installed_packages  # standard library only

    key = [[p, os.stat(p).st_mtime_ns] for p in sys.path if p and os.path.isdir(p)]
    if cache_path:
        try:
            cached = json.loads(Path(cache_path).read_text())
            if cached.get("key") == key:
                return cached["digest"]
        except (OSError, ValueError, AttributeError):
            pass
    digest = hashlib.sha256(repr(installed_packages()).encode()).hexdigest()[:16]
    if cache_path:
        try:
            Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(cache_path).with_name(f".{Path(cache_path).name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"key": key, "digest": digest}))
            os.replace(tmp, cache_path)
        except OSError:
            pass
    return digest


# What a model's own code may hold besides Python: small config files it reads. Anything else (weights,
# images, the workflow's results) is not code.
CODE_SUFFIXES = {".py", ".pyi", ".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".txt"}
MAX_CONFIG_BYTES = 1 << 20
# Folders that are never a model's code: the workflow's own outputs, caches, environments, version control.
NOT_CODE_DIRS = {"results", "logs", "__pycache__", "site-packages", "node_modules", "build", "dist"}


def code_files(root: Path) -> list[Path]:
    """The source files under ``root``: no hidden or VCS folders, no outputs, no virtual environments, no symlinked folders."""
    found = []
    for here, dirs, names in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in NOT_CODE_DIRS
            and not (Path(here, d) / "pyvenv.cfg").exists()
            and not Path(here, d).is_symlink()
        )
        for name in sorted(names):
            path = Path(here, name)
            if name.startswith(".") or path.suffix not in CODE_SUFFIXES or not path.is_file():
                continue
            if path.suffix not in (".py", ".pyi") and path.stat().st_size > MAX_CONFIG_BYTES:
                continue
            found.append(path)
    return sorted(found)


_USER_DIGESTS: dict = {}


def user_code_digest(module: str, code_path: str | None) -> str:
    """A model's own code (``module`` + the source files under ``code_path``) as one hash: an edit reruns that model's jobs.

    Python sources count by their normalised form (comments and formatting change nothing); small config
    files (:data:`CODE_SUFFIXES`) by their bytes. The workflow's outputs (``results/``, ``logs/``), hidden and
    VCS folders, caches and virtual environments are left out (:func:`code_files`), so ``code_path: "."``
    neither reruns everything after each run nor reads the results at every parse.
    """
    root = Path(code_path) if code_path else None
    found = code_files(root) if root is not None and root.is_dir() else []
    # one parse asks twice (the factory check and the user_code param): the files' stats say whether to read them again
    key = (module, str(root), tuple((str(f), s.st_mtime_ns, s.st_size) for f, s in ((f, f.stat()) for f in found)))
    if key in _USER_DIGESTS:
        return _USER_DIGESTS[key]
    h = hashlib.sha256(module.encode())
    for path in found:
        h.update(str(path.relative_to(root).as_posix()).encode() + b"\0")
        data = path.read_bytes()
        if path.suffix == ".py":
            try:
                data = normalised(data.decode("utf-8")).encode()
            except (SyntaxError, UnicodeDecodeError, ValueError):
                pass  # not parseable: its bytes count (the job will fail on it anyway)
        h.update(hashlib.sha256(data).digest())
    _USER_DIGESTS[key] = h.hexdigest()[:16]
    return _USER_DIGESTS[key]
