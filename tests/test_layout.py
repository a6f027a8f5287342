"""One name per concept: config technique = rule = script = step, read from the rules Snakemake itself parsed."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compressflow import codedigest, layout
from tests.conftest import REPO


def parsed_rules(workdir, snakefile=REPO / "Snakefile", config=REPO / "tests" / "tiny_config.yaml"):
    """{rule name: (script, param names, conda env files, the .smk file defining it)} of the workflow as Snakemake parses it (paths relative to the repo)."""
    code = f"""
import json
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
with SnakemakeApi(OutputSettings(quiet=True)) as api:
    wf = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[Path({str(config)!r})]),
        storage_settings=StorageSettings(),
        snakefile=Path({str(snakefile)!r}),
        workdir=Path({str(workdir)!r}),
    )._workflow
    from types import SimpleNamespace
    from compressflow import layout
    root = Path({str(snakefile.parent)!r}).resolve()
    out = {{}}
    for r in wf.rules:
        script = str((Path(str(r.basedir)) / r.script).resolve().relative_to(root)) if r.script else None
        envs = r.conda_env
        if callable(envs):  # picked per job: evaluate it for every runtime a job can have
            envs = sorted({{envs(SimpleNamespace(runtime=rt)) for rt in layout.RUNTIMES}})
        envs = [str((Path(str(r.basedir)) / e).resolve().relative_to(root)) for e in ([envs] if isinstance(envs, str) else envs or [])]
        out[r.name] = [script, sorted(r.params.keys()), envs, str(Path(str(r.snakefile)).resolve().relative_to(root))]
    print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {k: tuple(v) for k, v in __import__("json").loads(proc.stdout.strip().splitlines()[-1]).items()}


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    return parsed_rules(tmp_path_factory.mktemp("parse"))


def test_schema_techniques_are_the_layout_table():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    enum = schema["properties"]["variants"]["additionalProperties"]["properties"]["technique"]["enum"]
    assert sorted(enum) == sorted(layout.TECHNIQUES)


def test_each_technique_is_one_name_from_rule_to_step(rules):
    for name, tech in layout.TECHNIQUES.items():
        for rule in (*tech.before, name):
            assert rule in rules, f"technique {name}: no rule {rule}"
            script, params, _, smk = rules[rule]
            assert script == f"scripts/{rule}.py", (rule, script)
            assert "code" in params, f"rule {rule} has no code digest param"
            step = importlib.import_module(f"compressflow.steps.{rule}")
            assert callable(getattr(step, rule)), f"compressflow/steps/{rule}.py has no function {rule}"
            assert smk == f"rules/{tech.stage}.smk", (rule, smk)


def test_every_script_is_a_shim_over_the_step_of_the_same_name(rules):
    scripts = {s for s, *_ in rules.values() if s}
    assert scripts == {f"scripts/{p.name}" for p in (REPO / "scripts").glob("*.py")}, "a script no rule uses, or a rule without one"
    for script in scripts:
        name = Path(script).stem
        tree = ast.parse((REPO / script).read_text())
        imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert (f"compressflow.steps.{name}", name) in imported, script
    steps = {p.stem for p in (REPO / "compressflow" / "steps").glob("*.py")} - {"__init__"}
    assert steps == {Path(s).stem for s in scripts}


def test_every_rule_with_a_script_carries_its_code_digest(rules):
    missing = [name for name, (script, params, *_) in rules.items() if script and "code" not in params]
    assert missing == []


def _module_graph():
    lib = codedigest.Library(REPO)
    graph = {}
    for path in (REPO / "compressflow").rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        # parent packages are initialised first but do not depend on their children
        graph[name] = {m for m in codedigest.imports(ast.parse(path.read_text()), name, lib) if not name.startswith(m + ".") and m != name}
    return graph


def test_library_has_no_import_cycles():
    graph, state, cycles = _module_graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep) :] + [dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_cycle_detector_finds_a_cycle(tmp_path, monkeypatch):
    pkg = tmp_path / "compressflow"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from compressflow import b\n")
    (pkg / "b.py").write_text("def f():\n    from compressflow import a\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    with pytest.raises(AssertionError, match="compressflow.a"):
        test_library_has_no_import_cycles()


def test_layout_and_codedigest_import_no_torch():
    code = "import sys, compressflow.layout, compressflow.codedigest, compressflow.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr


def test_runtime_artifacts_are_under_the_variant_folder():
    assert set(layout.ARTIFACTS) == set(layout.RUNTIMES)
    assert layout.artifact("m", "prune-ch50/ptq", "openvino-int8") == "results/m/prune-ch50/ptq/openvino-int8/model.xml"
    assert layout.weights_of(layout.artifact("m", "v", "openvino")) == "results/m/v/openvino/model.bin"


def test_every_rule_with_a_script_names_existing_conda_envs(rules):
    for name, (script, _, envs, _) in rules.items():
        if not script:
            continue
        assert envs, f"rule {name} has no conda: env"
        for env in envs:
            assert env.startswith("envs/") and (REPO / env).is_file(), f"rule {name}: {env} missing"
