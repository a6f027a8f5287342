import os
import re
import sys

# Scripts import the compressflow package from this repository, in the pip venv and in
# every conda env alike (each job's Python inherits this variable).
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
    )
)
sys.path.insert(0, workflow.basedir)

from compressflow import config as cfcheck
from compressflow.errors import CompressflowError

try:
    cfcheck.check(config, os.path.join(workflow.basedir, "config", "schema.yaml"))
except CompressflowError as _exc:
    sys.exit(f"compressflow config error: {_exc}")
# Fills schema defaults; cannot fail after the check above.
validate(config, "../config/schema.yaml")

MODELS = list(config["models"])
VARIANTS = config["variants"] or {}
ROOT = cfcheck.ROOT_VARIANT


def alternation(names):
    """A regex matching exactly these names (and nothing when there are none)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def canonical(obj):
    """Dicts with sorted keys, recursively: params then compare equal however the YAML orders keys."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


def variants_of(technique):
    return [name for name, spec in VARIANTS.items() if spec["technique"] == technique]


def models_of(variant):
    if variant == ROOT:
        return MODELS
    return VARIANTS[variant].get("models", MODELS)


def parent_of(variant):
    return VARIANTS[variant]["from"]


def knobs(wildcards):
    """The variant's technique knobs: everything in its config entry but from/technique/models."""
    spec = VARIANTS[wildcards.variant]
    return canonical(
        {k: v for k, v in spec.items() if k not in ("from", "technique", "models")}
    )


def parent_model(wildcards):
    return f"results/{wildcards.model}/{parent_of(wildcards.variant)}/model.pt"


def built_variants():
    """(model, variant) for every artifact the config asks for, the baseline included."""
    return [(m, v) for v in [ROOT, *VARIANTS] for m in models_of(v)]


def technique_of(variant):
    return "train" if variant == ROOT else VARIANTS[variant]["technique"]


def checkpoint_of(wildcards):
    ckpt = config["models"][wildcards.model].get("checkpoint")
    return {"checkpoint": ckpt} if ckpt else {}


def parent_outputs(wildcards):
    """The parent's model and test logits, so agreement and speed-up compare like with like."""
    if wildcards.variant == ROOT:
        return {}
    parent = parent_of(wildcards.variant)
    return {
        "parent_model": f"results/{wildcards.model}/{parent}/model.pt",
        "parent_logits": f"results/{wildcards.model}/{parent}/test_logits.pt",
    }


wildcard_constraints:
    model=alternation(MODELS),
