"""Parameter studies as config: ``sweeps.<name>`` is a variant template whose knobs may be lists.

At parse time each sweep expands into ordinary variants, one per point of the product of its lists,
named ``<name>@<knob>=<value>[,<knob>=<value>...]`` (``prune-ch@ratio=0.3``). Each point is a variant like
any other: its own folder, provenance, exact reruns, chains that start from it (``from:
prune-ch@ratio=0.5``), deploy rows and ``repeats``. Adding a value plans only that point's jobs and the
report's; removing one deletes nothing.

Snakemake's ``Paramspace`` was the model for the naming (``knob=value``) but is not used: it turns a
table into a wildcard pattern of one rule, while a point here must be a variant that every rule
(techniques, runtimes, the report) already knows.

Standard library only (and the schema check): ``rules/common.smk`` runs this at parse time.
"""

from __future__ import annotations

import itertools
import re

from compressflow.errors import CompressflowError

SEP = "@"
#: Points one sweep may expand to: a typo (a list where a value was meant) should not plan a thousand jobs.
MAX_POINTS = 64
#: Knobs whose value is itself a list: a list of lists sweeps them.
LIST_KNOBS = frozenset({"models", "ignored_layers", "fp32_layers"})
#: Keys a sweep cannot vary: what the variant is (its technique) and where it starts.
FIXED = ("from", "technique")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")


def value_text(value) -> str:
    """A knob value as it appears in a point's name: ``0.3``, ``true``, ``minmax``, ``a+b`` for a list."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, list):
        return "+".join(value_text(v) for v in value)
    return str(value)


def point_name(sweep: str, values: dict) -> str:
    return f"{sweep}{SEP}" + ",".join(f"{k}={value_text(v)}" for k, v in values.items())


def axes_of(template: dict) -> dict:
    """The swept knobs of a template and their values, in the template's order."""
    return {
        k: v for k, v in template.items() if isinstance(v, list) and (k not in LIST_KNOBS or (v and all(isinstance(x, list) for x in v)))
    }


def expand(sweeps: dict, variants: dict) -> tuple[dict, dict]:
    """(the variants with every sweep point added, {sweep: {"axes": [...], "points": {variant: {knob: value}}}}).

    Errors name the sweep key: an empty list, a list that repeats a value, a swept ``from``/``technique``,
    a name that collides with a variant, more than :data:`MAX_POINTS` points. Each point's knobs are then
    checked by the schema like any variant's (:func:`compressflow.config.expand_sweeps`).
    """
    out, meta = dict(variants), {}
    for name, template in (sweeps or {}).items():
        where = f"sweeps.{name}"
        if not _NAME.match(str(name)):
            raise CompressflowError(
                f"{where}: the name may hold letters, digits and _ . - / only", "rename the sweep (its points are named <name>@knob=value)"
            )
        if not isinstance(template, dict) or any(k not in template for k in FIXED):
            raise CompressflowError(f"{where} needs 'from' and 'technique'", "write it as a variant whose knobs may be lists")
        for key in FIXED:
            if isinstance(template[key], list):
                raise CompressflowError(f"{where}.{key} is a list, but a sweep cannot vary its {key}", f"make one sweep per {key}")
        axes = axes_of(template)
        if not axes:
            raise CompressflowError(
                f"{where} has no knob with a list of values", "give the knob to sweep a list (ratio: [0.3, 0.5, 0.7]), or make it a variant"
            )
        for knob, values in axes.items():
            if not values:
                raise CompressflowError(f"{where}.{knob} is an empty list", "give it at least one value, or remove the sweep")
            texts = [value_text(v) for v in values]
            if len(set(texts)) != len(texts):
                raise CompressflowError(f"{where}.{knob} lists a value twice ({texts})", "list each value once")
        n = 1
        for values in axes.values():
            n *= len(values)
        if n > MAX_POINTS:
            raise CompressflowError(
                f"{where} has {n} points ({' x '.join(str(len(v)) for v in axes.values())}), over the limit of {MAX_POINTS}",
                "split it into smaller sweeps, or shorten its lists",
            )
        points = {}
        for combo in itertools.product(*axes.values()):
            values = dict(zip(axes, combo, strict=True))
            point = point_name(name, values)
            if point in out:
                raise CompressflowError(f"{where}: its point '{point}' has the name of another variant", "rename the sweep or that variant")
            out[point] = {**template, **values}
            points[point] = values
        meta[name] = {"axes": list(axes), "values": axes, "technique": template["technique"], "points": points}
    return out, meta
