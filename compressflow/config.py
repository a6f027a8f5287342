"""Config checks that stop a run before any job starts, with one line per problem."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from compressflow import layout, modelspec
from compressflow.errors import CompressflowError
from compressflow.layout import ROOT_VARIANT

# Folder names the workflow writes beside or above a model's and a variant's folders: a model or a
# variant (or one segment of a chained variant name) with one of these names would collide with them.
RESERVED_NAMES = tuple(
    sorted(
        {"benchmarks", "data", "logs", "provenance", "report", "sensitivity", *layout.RUNTIMES}
        | {path.split("/")[0] for path in layout.ARTIFACTS.values() if "/" in path}
    )
)


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when present: parsing stays fast
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""


def _strict_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise CompressflowError(
                f"config file '{key_node.start_mark.name}' line {line}: key '{key}' is given twice (first on line {seen[key]})",
                "keep one of them; YAML would silently drop the first",
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def read_config_file(path) -> dict:
    """A YAML config file, with duplicate keys and syntax errors as one line naming the file and line."""
    path = Path(path)
    if path.is_dir():
        raise CompressflowError(f"config file '{path}' is a directory, not a file", "pass a YAML file")
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CompressflowError(
            f"config file '{path}'{where} is not valid YAML ({exc.problem or exc.context})",
            "fix the YAML there (indent with spaces, quote values that contain ': ')",
        ) from exc


def read_config_files(paths) -> None:
    """Read each config file strictly (Snakemake's own loader keeps the last of two equal keys)."""
    for path in paths:
        read_config_file(path)


def _is_integer_schema(schema: dict) -> bool:
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    return "integer" in types and "number" not in types


def _applicable(schema: dict, value, root: dict) -> list[dict]:
    """The schema plus every sub-schema that applies to ``value`` ($ref, allOf, if/then)."""
    out, todo = [], [schema]
    while todo:
        s = todo.pop()
        if not isinstance(s, dict):
            continue
        if "$ref" in s:
            node = root
            for part in s["$ref"].lstrip("#/").split("/"):
                node = node[part]
            todo.append(node)
        out.append(s)
        for sub in s.get("allOf", []):
            if "if" in sub:
                if Draft202012Validator(sub["if"]).is_valid(value):
                    todo.append(sub.get("then", {}))
            else:
                todo.append(sub)
    return out


def normalise_integers(config, schema: dict, root: dict | None = None):
    """Integral floats (``1.0``) where the schema wants an integer become ints, in place.

    Non-integral floats are left for the schema check to reject. Doing this before params are
    computed makes ``1`` and ``1.0`` the same config, so neither reruns anything nor reaches a job.
    """
    root = root if root is not None else schema
    schemas = _applicable(schema, config, root)
    if isinstance(config, dict):
        for key, value in config.items():
            subs = [s["properties"][key] for s in schemas if key in s.get("properties", {})]
            if not subs:
                subs = [s["additionalProperties"] for s in schemas if isinstance(s.get("additionalProperties"), dict)]
            for sub in subs:
                if _is_integer_schema(sub) and isinstance(value, float) and value.is_integer():
                    config[key] = value = int(value)
                normalise_integers(value, sub, root)
    elif isinstance(config, list):
        for s in schemas:
            items = s.get("items")
            if not isinstance(items, dict):
                continue
            for i, value in enumerate(config):
                if _is_integer_schema(items) and isinstance(value, float) and value.is_integer():
                    config[i] = value = int(value)
                normalise_integers(value, items, root)
    return config


def check_names(config: dict) -> None:
    """Model and variant names are folder names: none may collide with a folder the workflow writes."""
    for kind, names in (("models", config.get("models") or {}), ("variants", config.get("variants") or {})):
        for name in names:
            clash = [part for part in str(name).split("/") if part in RESERVED_NAMES]
            if clash:
                raise CompressflowError(
                    f"{kind}.{name}: '{clash[0]}' is a folder name the workflow reserves",
                    f"rename it; reserved names: {', '.join(RESERVED_NAMES)}",
                )


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
    schema = yaml.load(Path(schema_path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    normalise_integers(config, schema)
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


def expand_sweeps(config: dict, schema_path, fill_defaults=None) -> dict:
    """``config["variants"]`` with every sweep point added (compressflow/sweeps.py); returns the sweeps' description.

    Each point is checked by the schema as a variant, and an error names the sweep and the point;
    ``fill_defaults(config)`` (Snakemake's ``validate``) then fills the points' defaults as for any variant.
    """
    from compressflow import sweeps

    expanded, meta = sweeps.expand(config.get("sweeps") or {}, config.get("variants") or {})
    points = [(sweep, point) for sweep, m in meta.items() for point in m["points"]]
    if points:
        probe = {"models": config["models"], "variants": {f"sweep-point-{i}": expanded[p] for i, (_, p) in enumerate(points)}}
        try:
            check_schema(probe, schema_path)
        except CompressflowError as exc:
            text = str(exc)
            for i, (sweep, point) in enumerate(points):
                key = f"variants.sweep-point-{i}"
                if re.search(rf"{re.escape(key)}\b", text):
                    what = exc.what.replace(key, f"sweeps.{sweep} (point '{point}')")
                    raise CompressflowError(what, exc.fix) from exc
            raise
        if fill_defaults is not None:
            fill_defaults(probe)
    config["variants"] = expanded
    return meta


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
        if "models" in spec and not spec["models"]:
            raise CompressflowError(
                f"variants.{name}.models is an empty list: the variant would be built for no model",
                f"list the models it is for ({', '.join(sorted(config['models']))}), or remove models: to build it for all",
            )
        for model in spec.get("models", []):
            if model not in config["models"]:
                raise CompressflowError(
                    f"variants.{name}.models names unknown model '{model}'", f"use one of: {', '.join(sorted(config['models']))}"
                )
    quantized = set(layout.techniques(quantized=True))
    for name, spec in variants.items():
        parent = variants.get(spec["from"], {})
        if parent.get("technique") in quantized and spec["technique"] != "distill":
            raise CompressflowError(
                f"variants.{name} ({spec['technique']}) is built from '{spec['from']}', which is already INT8 ({parent['technique']})",
                "build it from an FP32 variant (fp32, a fused, pruned or distilled one): a model is quantized once",
            )
        student = variants.get(spec.get("student_from"), {})
        if student.get("technique") in quantized:
            raise CompressflowError(
                f"variants.{name}.student_from names '{spec['student_from']}', which is INT8 ({student['technique']}): it cannot be trained",
                "distill into an FP32 student (e.g. a pruned variant) and quantize the distilled variant afterwards",
            )
    _check_no_cycle(variants)


def _check_no_cycle(variants: dict) -> None:
    """No variant depends on itself through ``from`` and ``student_from`` together (Snakemake would say CyclicGraphException)."""

    def deps(v):
        spec = variants[v]
        return [(k, spec[k]) for k in ("from", "student_from") if spec.get(k) in variants]

    for name in variants:
        stack, seen = [(name, [])], set()
        while stack:
            cur, path = stack.pop()
            for key, dep in deps(cur):
                step = [*path, f"{cur}.{key}"]
                if dep == name:
                    raise CompressflowError(
                        f"variants.{name} depends on itself ({' -> '.join(f'variants.{s}' for s in step)} -> '{name}')",
                        "make student_from and from name variants built before this one",
                    )
                if dep not in seen:
                    seen.add(dep)
                    stack.append((dep, step))


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
                if same_student(spec["student"], m.get("arch"), m.get("arch_kwargs", {})):
                    raise CompressflowError(
                        f"variants.{name}: the student ({spec['student']['arch']} {spec['student'].get('arch_kwargs') or {}}) is the same network as the teacher '{model}'",
                        "pick a smaller student (e.g. mobilenet_v2 with arch_kwargs {width_mult: 0.5}), use student_from, or restrict the variant with models:",
                    )


def check_inputs(config: dict) -> str | None:
    """Input files named by the config are usable, before any job could delete an older output.

    Returns the digest of the image tree's manifest (None for the embedded digits): the one scan
    of the tree both checks every image and makes its content an input of ``prepare_data``.
    """
    ds = config["dataset"]
    total = sum(ds["splits"].values())
    if abs(total - 1.0) > 1e-6:
        raise CompressflowError(f"dataset.splits sum to {total:g}", "make train + calib + val + test = 1")
    if ds["kind"] == "imagefolder" and not ds.get("root"):
        raise CompressflowError("dataset.kind is 'imagefolder' but dataset.root is not set", "set dataset.root to your image folder")
    check_models(config)
    checkpoints = any(spec.get("checkpoint") for spec in config["models"].values())
    if ds["kind"] == "digits" and not checkpoints:
        check_factories(config, 10)
        return None  # nothing to open: keeps parsing (and `snakemake -n`) free of the torch import
    from compressflow import data, models, recipes

    manifest, n_classes = None, 10
    if ds["kind"] == "imagefolder":
        _, classes, entries = data.scan_imagefolder(ds["root"], ds.get("max_image_pixels", data.MAX_IMAGE_PIXELS), data.DECODE_CACHE)
        manifest, n_classes = data.manifest_digest(entries), len(classes)
    for name, spec in config["models"].items():
        if spec.get("checkpoint"):
            what = f"models.{name}.checkpoint"
            state = recipes.read_state_dict(spec["checkpoint"], what, spec.get("checkpoint_key"))
            model = models.build(spec.get("arch"), n_classes, **recipes.model_source(spec), **spec.get("arch_kwargs", {}))
            recipes.load_state(model, state, spec["checkpoint"], num_classes=n_classes, prefix=spec.get("checkpoint_prefix"))
    check_factories(config, n_classes)
    return manifest


FACTORY_CACHE = Path(".snakemake") / "compressflow" / "factories.txt"


def check_factories(config: dict, n_classes: int, cache=FACTORY_CACHE) -> None:
    """Each user factory is called once, before any job: it must build an ``nn.Module`` whose output on a dummy
    batch is logits ``[N, num_classes]``, at the size the models see and at the latency input sizes.

    A pass is remembered by the module's code digest, its arch_kwargs, the class count and the sizes, so an
    unchanged config checks nothing again and the no-op dry run stays free of the torch import.
    """
    import hashlib

    from compressflow import codedigest, preprocess

    seen = set(Path(cache).read_text().split()) if Path(cache).is_file() else set()
    model_size = preprocess.model_size(config["dataset"]["preprocess"])
    latency = {
        "evaluate.latency.input_size": config["evaluate"]["latency"]["input_size"],
        "benchmark.input_size": config["benchmark"]["input_size"],
    }
    passed = []
    for name, spec in config["models"].items():
        if not spec.get("module"):
            continue
        what = f"models.{name}.module '{spec['module']}'"
        sizes = {"the dataset's": model_size, **latency}
        key = hashlib.sha256(
            json.dumps(
                [codedigest.user_code_digest(spec["module"], spec.get("code_path")), spec.get("arch_kwargs", {}), n_classes, sizes],
                sort_keys=True,
                default=str,
            ).encode()
        ).hexdigest()
        if key in seen:
            continue
        import torch

        from compressflow import models

        model = models.build(None, n_classes, module=spec["module"], code_path=spec.get("code_path"), **spec.get("arch_kwargs", {}))
        model.eval()
        for knob, size in sizes.items():
            try:
                with torch.no_grad():
                    out = model(torch.zeros(2, 3, size, size))
            except Exception as exc:
                if knob == "the dataset's":
                    raise CompressflowError(
                        f"{what}: forward of a [2, 3, {size}, {size}] batch (the dataset's size) raised {type(exc).__name__}: "
                        f"{str(exc)[:200]}",
                        "make the model take 3-channel images of the dataset's size (dataset.input_size / preprocess.crop)",
                    ) from exc
                raise CompressflowError(
                    f"{what} does not take {size} px inputs ({knob}: {type(exc).__name__}: {str(exc)[:160]})",
                    f"set {knob}: {model_size} (the size it was trained at) in the config",
                ) from exc
            if not isinstance(out, torch.Tensor):
                raise CompressflowError(
                    f"{what}: forward returns {type(out).__name__}, not a logits tensor [N, num_classes]",
                    "return the logits only (e.g. the first element of the tuple)",
                )
            if tuple(out.shape) != (2, n_classes):
                raise CompressflowError(
                    f"{what}: forward of 2 images gives shape {list(out.shape)}, not [2, {n_classes}] (the dataset has {n_classes} classes)",
                    f"make the classifier output num_classes (the factory is called with num_classes={n_classes})",
                )
        passed.append(key)
    if passed:
        try:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            with open(cache, "a") as f:
                f.write("".join(k + "\n" for k in passed))
        except OSError:
            pass  # a read-only workdir: checked again next time


def check_models(config: dict) -> None:
    """Each model names something that builds: a torchvision/own architecture, or an importable user factory."""
    for name, spec in config["models"].items():
        where = f"models.{name}"
        if spec.get("arch") and spec.get("module"):
            raise CompressflowError(
                f"{where} has both 'arch' and 'module'", "keep one: arch for a torchvision model, module for your own code"
            )
        if spec.get("code_path") and not spec.get("module"):
            raise CompressflowError(f"{where}.code_path is set without 'module'", "add module: 'package.module:factory' or drop code_path")
        if spec.get("module"):
            code_path = spec.get("code_path")
            if code_path and not Path(code_path).is_dir():
                raise CompressflowError(
                    f"{where}.code_path '{code_path}' is not a directory", "point it at the folder that holds your package"
                )
            modelspec.load_factory(spec["module"], code_path, f"{where}.module")
        else:
            modelspec.check_arch(spec["arch"], f"{where}.arch")
    for vname, spec in (config.get("variants") or {}).items():
        student = spec.get("student") if isinstance(spec, dict) else None
        if isinstance(student, dict) and student.get("arch"):
            modelspec.check_arch(student["arch"], f"variants.{vname}.student.arch")


def check_writable(workdir) -> None:
    """The folders the workflow writes to are writable (else every job would fail late)."""
    import os

    for name in ("results", "logs", ".snakemake"):
        path = Path(workdir) / name
        target = path if path.exists() else Path(workdir)
        if not os.access(target, os.W_OK):
            raise CompressflowError(f"'{target.resolve()}' is not writable", "run from a writable directory or fix its permissions")
    # a job rewrites files in its own sub-folder: one that is read-only (a mount, a chmod) fails it late, in a traceback
    for name in ("results", "logs"):
        for here, dirs, _ in os.walk(Path(workdir) / name):
            for d in dirs:
                sub = Path(here) / d
                if not os.access(sub, os.W_OK | os.X_OK):
                    raise CompressflowError(
                        f"'{sub}' is not writable, and the jobs that write there would fail",
                        f"make it writable (chmod -R u+w '{sub}', or remount it read-write), or delete it to rebuild it",
                    )


def check_all(config: dict, schema_path, workdir=".") -> None:
    """Schema, then everything else (for callers outside Snakemake, which fills defaults in between)."""
    check_schema(config, schema_path)
    check(config, workdir)


def check(config: dict, workdir=".") -> str | None:
    """Checks beyond the schema; run after the schema check filled in defaults. Returns the dataset manifest digest."""
    from compressflow import preprocess

    check_names(config)
    config["dataset"]["preprocess"] = preprocess.resolve(config["dataset"])
    preprocess.model_size(config["dataset"]["preprocess"])
    check_variants(config)
    check_distill(config.get("variants") or {}, config["models"], ROOT_VARIANT)
    manifest = check_inputs(config)
    check_writable(workdir)
    return manifest
