"""A stand-in for ``torch._dynamo`` while eager code runs that imports it without needing it.

Importing torch._dynamo costs 1.3-2 s of a job's start-up (with sympy and triton). torchvision asks for
one name of it at import time (``torchvision.ops.roi_align``), and ``torch.optim`` for no-op decorators in
every step; neither is used outside ``torch.compile``. :func:`stand_in` puts a module holding just those
names in its place for the duration of a ``with`` block, then removes it, so a later
``import torch._dynamo`` (torch.compile, torch.export, torchao) loads the real module. When the real one
is already imported, nothing is replaced. Used by ``modelspec.import_torchvision`` and
``train.without_dynamo_import``.
"""

from __future__ import annotations

import contextlib
import sys
import types


@contextlib.contextmanager
def stand_in(names: dict | None = None, utils: dict | None = None):
    """``torch._dynamo`` (and ``torch._dynamo.utils``) as stand-ins holding ``names`` (``utils``) inside the block.

    Yields True when the stand-in is in place, False when the real module was already imported.
    """
    import torch

    if "torch._dynamo" in sys.modules:
        yield False
        return
    package = types.ModuleType("torch._dynamo")
    package.__path__ = []
    for key, value in (names or {}).items():
        setattr(package, key, value)
    modules = {"torch._dynamo": package}
    if utils is not None:
        sub = types.ModuleType("torch._dynamo.utils")
        for key, value in utils.items():
            setattr(sub, key, value)
        package.utils = sub
        modules["torch._dynamo.utils"] = sub
    sys.modules.update(modules)
    torch._dynamo = package
    try:
        yield True
    finally:
        for name, module in modules.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
        if torch.__dict__.get("_dynamo") is package:
            delattr(torch, "_dynamo")
