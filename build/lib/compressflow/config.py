"""Config checks that stop a run before any job starts, with one line per problem."""

from __future__ import annotations

from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from compressflow.errors import CompressflowError

ROOT_VARIANT = "fp32"


def _where(error) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "<top level>"


def _describe(error) -> str:
    v, schema = error.validator, error.schema
    if v == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        if schema.get("patternProperties") or not allowed:
            return f"unknown key(s) {extra}"
        return f"unknown key(s) {extra}; allowed keys: {', '.join(allowed)}"
    if v == "enum":
        return f"value {error.instance!r} not allowed; allowed values: {', '.join(map(str, schema['enum']))}"
    if v == "type":
        return f"value {error.instance!r} has the wrong type; expected {schema['type']}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bounds = {k: schema[k] for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum") if k in schema}
        return f"value {error.instance!r} out of range; allowed: {', '.join(f'{k} {b}' for k, b in bounds.items())}"
    if v == "required":
        return error.message
    return error.message.splitlines()[0]


def check_schema(config: dict, schema_path) -> None:
    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = sorted(
        Draft202012Validator(schema).iter_errors(config),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
        reverse=True,
    )
    if errors:
        e = errors[0]
        raise CompressflowError(
            f"config key '{_where(e)}': {_describe(e)}",
            f"edit it in the config file (schema: {Path(schema_path).name}, docs: config/README.md)",
        )


def check_variants(config: dict) -> None:
    """Every ``from:`` names a known variant, names are unique paths, and there is no cycle."""
    variants = config.get("variants") or {}
    for model in (config.get("deploy") or {}).get("models", []):
        if model not in config["models"]:
            raise CompressflowError(f"deploy.models names unknown model '{model}'", f"use one of: {', '.join(sorted(config['models']))}")
    if ROOT_VARIANT in variants:
        raise CompressflowError(f"variants.{ROOT_VARIANT} is reserved for the trained baseline", "rename that variant")
    for name, spec in variants.items():
        parent = spec["from"]
        if parent != ROOT_VARIANT and parent not in variants:
            raise CompressflowError(
                f"variants.{name}.from names '{parent}', which is not a variant",
                f"use '{ROOT_VARIANT}' or one of: {', '.join(sorted(variants))}",
            )
        seen, cur = {name}, parent
        while cur != ROOT_VARIANT:
            if cur in seen:
                raise CompressflowError(f"variants.{name}: 'from' chain loops through '{cur}'", "make every chain end at fp32")
            seen.add(cur)
            cur = variants[cur]["from"]
        for model in spec.get("models", []):
            if model not in config["models"]:
                raise CompressflowError(
                    f"variants.{name}.models names unknown model '{model}'", f"use one of: {', '.join(sorted(config['models']))}"
                )


def same_student(spec: dict, arch: str, arch_kwargs: dict) -> bool:
    return spec.get("arch") == arch and dict(spec.get("arch_kwargs") or {}) == dict(arch_kwargs or {})


def check_distill(variants: dict, model_specs: dict, root: str) -> None:
    """Config-time checks: student_from names a variant, and a fresh student differs from an fp32 teacher."""
    for name, spec in variants.items():
        if spec.get("technique") != "distill":
            continue
        src = spec.get("student_from")
        if src is not None and src != root and src not in variants:
            raise CompressflowError(
                f"variants.{name}.student_from names '{src}', which is not a variant",
                f"use '{root}' or one of: {', '.join(sorted(variants))}",
            )
        if src is None and "student" not in spec:
            raise CompressflowError(
                f"variants.{name} has neither 'student' nor 'student_from'", "add student: {arch: ...} or student_from: <variant>"
            )
        if src is not None and "student" in spec:
            raise CompressflowError(f"variants.{name} has both 'student' and 'student_from'", "keep one of them")
        if src is None and spec["from"] == root:
            for model in spec.get("models", list(model_specs)):
                m = model_specs[model]
                if same_student(spec["student"], m["arch"], m.get("arch_kwargs", {})):
                    raise CompressflowError(
                        f"variants.{name}: the student ({spec['student']['arch']} {spec['student'].get('arch_kwargs') or {}}) is the same network as the teacher '{model}'",
                        "pick a smaller student (e.g. mobilenet_v2 with arch_kwargs {width_mult: 0.5}), use student_from, or restrict the variant with models:",
                    )


def check_inputs(config: dict) -> None:
    """Input files named by the config are usable, before any job could delete an older output."""
    ds = config["dataset"]
    total = sum(ds["splits"].values())
    if abs(total - 1.0) > 1e-6:
        raise CompressflowError(f"dataset.splits sum to {total:g}", "make train + calib + val + test = 1")
    if ds["kind"] == "imagefolder" and not ds.get("root"):
        raise CompressflowError("dataset.kind is 'imagefolder' but dataset.root is not set", "set dataset.root to your image folder")
    checkpoints = any(spec.get("checkpoint") for spec in config["models"].values())
    if ds["kind"] == "digits" and not checkpoints:
        return  # nothing to open: keeps parsing (and `snakemake -n`) free of the torch import
    from compressflow import data, models, recipes

    n_classes = data.num_classes(ds["kind"], ds.get("root"))
    for name, spec in config["models"].items():
        if spec.get("checkpoint"):
            state = recipes.read_state_dict(spec["checkpoint"], f"models.{name}.checkpoint")
            model = models.build(spec["arch"], n_classes, **spec.get("arch_kwargs", {}))
            recipes.load_state(model, state, spec["checkpoint"])


def check_writable(workdir) -> None:
    """The folders the workflow writes to are writable (else every job would fail late)."""
    import os

    for name in ("results", "logs", ".snakemake"):
        path = Path(workdir) / name
        target = path if path.exists() else Path(workdir)
        if not os.access(target, os.W_OK):
            raise CompressflowError(f"'{target.resolve()}' is not writable", "run from a writable directory or fix its permissions")


def check_all(config: dict, schema_path, workdir=".") -> None:
    """Schema, then everything else (for callers outside Snakemake, which fills defaults in between)."""
    check_schema(config, schema_path)
    check(config, workdir)


def check(config: dict, workdir=".") -> None:
    """Checks beyond the schema; run after the schema check filled in defaults."""
    check_variants(config)
    check_distill(config.get("variants") or {}, config["models"], ROOT_VARIANT)
    check_inputs(config)
    check_writable(workdir)


def parent_chain(variants: dict, name: str) -> list[str]:
    """[name, parent, ..., fp32]."""
    chain = [name]
    while chain[-1] != ROOT_VARIANT:
        chain.append(variants[chain[-1]]["from"])
    return chain
