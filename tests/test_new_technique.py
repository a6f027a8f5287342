"""The worked example in docs/techniques.md, applied as written: a new technique is a schema entry,
one table row, one rule, one script and one step, and it then builds, evaluates and reports."""

import json
import re
import shutil

import yaml

from compressflow import provenance
from tests.conftest import REPO, snakemake
from tests.test_layout import parsed_rules


def _example_blocks():
    doc = (REPO / "docs" / "techniques.md").read_text()
    section = doc.split("## Adding a technique: a worked example", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\w*\n(.*?)```", section, flags=re.S)

    def one(pred, what):
        found = [b for b in blocks if pred(b)]
        assert len(found) == 1, f"docs/techniques.md worked example: expected one {what} block, found {len(found)}"
        return found[0]

    return {
        "enum": one(lambda b: "technique: {enum:" in b, "schema enum"),
        "schema": one(lambda b: b.lstrip().startswith("- if:"), "schema if/then"),
        "layout": one(lambda b: 'Technique("identity"' in b, "layout row"),
        "rule": one(lambda b: b.startswith("rule identity:"), "rule"),
        "script": one(lambda b: "run(snakemake, identity)" in b, "script"),
        "step": one(lambda b: "def identity(" in b, "step"),
    }


def _apply(repo, blocks):
    def edit(rel, old, new):
        path = repo / rel
        text = path.read_text()
        assert text.count(old) == 1, f"{rel}: anchor {old!r} not found once"
        path.write_text(text.replace(old, new))

    schema = repo / "config" / "schema.yaml"
    enum_line = next(line for line in schema.read_text().splitlines() if "technique: {enum:" in line)
    edit("config/schema.yaml", enum_line + "\n", blocks["enum"])
    fuse_if = "        - if: {properties: {technique: {const: fuse}}}\n"
    edit("config/schema.yaml", fuse_if, blocks["schema"] + fuse_if)
    fuse_row = '        Technique("fuse", "fuse"),\n'
    edit("compressflow/layout.py", fuse_row, fuse_row + blocks["layout"])
    (repo / "rules" / "fuse.smk").write_text((repo / "rules" / "fuse.smk").read_text() + "\n\n" + blocks["rule"])
    (repo / "scripts" / "identity.py").write_text(blocks["script"])
    (repo / "compressflow" / "steps" / "identity.py").write_text(blocks["step"])


def test_the_documented_toy_technique_builds_and_reports(tiny_copy, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(".venv", "results", "logs", ".snakemake", ".git", "__pycache__"))
    _apply(repo, _example_blocks())

    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    cfg["variants"]["same"] = {"from": "fp32", "technique": "identity"}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))

    # The name chain holds for the new technique too (schema enum = table, rule -> script -> step, code param).
    rules = parsed_rules(tmp_path / "parse", snakefile=repo / "Snakefile", config=config)
    assert rules["identity"][0] == "scripts/identity.py" and "code" in rules["identity"][1]

    # The new row in layout.py changes the code digest of rules that import it; only the new variant is built here.
    target = "results/resnet18/same/metrics.json"
    snakemake(tiny_copy, "--cores", "2", target, "--allowed-rules", "identity", "evaluate", config=config, repo=repo)
    built = tiny_copy / "results" / "resnet18"
    assert provenance.sha256(built / "same" / "model.pt") == provenance.sha256(built / "fp32" / "model.pt")
    record = json.loads((built / "same" / "provenance.json").read_text())
    assert record["rule"] == "identity" and record["params"]["verify"] is True and record["code_digest"]
    metrics = json.loads((built / "same" / "metrics.json").read_text())
    assert metrics["top1"] == json.loads((built / "fp32" / "metrics.json").read_text())["top1"]
    assert metrics["top1_agreement_vs_parent"] == 1.0
