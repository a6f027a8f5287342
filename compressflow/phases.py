"""Where a job's seconds go: start-up and imports, verifying inputs, loading, the work, writing, provenance.

``compressflow.smk.run`` times every job with a :class:`Clock` and prints one line to the rule's log::

    compressflow phases: rule=evaluate start=3.105 verify=0.012 load=0.402 work=0.951 write=0.044 provenance=0.210

``start`` is the process's age when the step is called (interpreter, Snakemake's script preamble, imports);
``load`` and ``write`` are the time spent inside the library's readers and writers (:data:`LOADERS`,
:data:`WRITERS`) while the step runs; ``work`` is the rest of the step. ``benchmarks/job_phases.py`` sums
the lines of a finished run per rule. Standard library only.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import re
import time
from collections import defaultdict

PHASES = ("start", "verify", "load", "work", "write", "provenance")
#: (module, function) pairs whose time counts as ``load`` / ``write`` (outermost call only).
LOADERS = (
    ("compressflow.artifacts", "load_model"),
    ("compressflow.artifacts", "read_recipe"),
    ("compressflow.data", "load_split"),
    ("compressflow.files", "load_tensors"),
    ("compressflow.files", "read_json"),
)
WRITERS = (
    ("compressflow.artifacts", "save_model"),
    ("compressflow.files", "save_tensors"),
    ("compressflow.files", "write_json"),
    ("compressflow.files", "write_csv"),
)
LINE = re.compile(r"^compressflow phases: rule=(\S+)((?: \w+=[0-9.]+)+)$")


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or None elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            after_name = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(after_name[19]) / os.sysconf("SC_CLK_TCK"))  # field 22: starttime in ticks
    except (OSError, ValueError, IndexError):
        return None


class Clock:
    """Seconds per phase of one job."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self._inside = None  # the phase of the outermost timed library call in progress

    @contextlib.contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    @contextlib.contextmanager
    def step(self):
        """The step: time inside the readers and writers goes to ``load``/``write``, the rest to ``work``."""
        restore = [self._patch(mod, name, "load") for mod, name in LOADERS]
        restore += [self._patch(mod, name, "write") for mod, name in WRITERS]
        start = time.perf_counter()
        before = self.seconds["load"] + self.seconds["write"]
        try:
            yield
        finally:
            inside = self.seconds["load"] + self.seconds["write"] - before
            self.seconds["work"] += time.perf_counter() - start - inside
            for undo in reversed(restore):
                undo()

    def _patch(self, module: str, name: str, phase: str):
        mod = importlib.import_module(module)
        original = getattr(mod, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if self._inside is not None:
                return original(*args, **kwargs)
            self._inside = phase
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
                self._inside = None

        setattr(mod, name, timed)
        return lambda: setattr(mod, name, original)

    def line(self, rule: str) -> str:
        return f"compressflow phases: rule={rule} " + " ".join(f"{p}={self.seconds.get(p, 0.0):.3f}" for p in PHASES)


def parse(text: str) -> list[tuple[str, dict]]:
    """(rule, {phase: seconds}) of every phases line in a log's text."""
    out = []
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if m:
            out.append((m[1], {k: float(v) for k, v in (kv.split("=") for kv in m[2].split())}))
    return out
