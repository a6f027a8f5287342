"""Variants built several times with different seeds (``repeats: N`` on a variant that trains).

Repeat 0 is the variant itself, under its own name and with the config ``seed``, so ``repeats: 1``
(the default) builds exactly what it always did and chains, ``student_from`` and ``deploy.variants``
keep naming it. Repeat k >= 1 is a generated variant ``<name>@seed<seed + k>`` with the same parent
and knobs, in its own results directory. Standard library only: ``rules/common.smk`` imports it at parse time.
"""

from __future__ import annotations

from compressflow import layout

#: Techniques whose result depends on a training seed (the schema allows ``repeats`` on these only).
TRAINED = tuple(layout.techniques(trains=True))
SEP = "@seed"


def seed_name(variant: str, seed: int) -> str:
    return f"{variant}{SEP}{seed}"


def expand(variants: dict, seed: int) -> tuple[dict, dict]:
    """(variants with the generated repeats added, {name: (repeated variant, its seed)} for every repeat).

    The second mapping holds only variants with ``repeats`` > 1, repeat 0 included; the generated
    names cannot clash with a configured one: the schema forbids ``@`` in variant names.
    """
    out, seeds = {}, {}
    for name, spec in variants.items():
        out[name] = spec
        n = int(spec.get("repeats", 1))
        if n > 1:
            seeds[name] = (name, seed)
            for k in range(1, n):
                out[seed_name(name, seed + k)] = spec
                seeds[seed_name(name, seed + k)] = (name, seed + k)
    return out, seeds
