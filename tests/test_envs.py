"""Every rule runs in a conda env whose pins match the tested pip venv."""

import re

import yaml

from tests.conftest import REPO


def _requirements():
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_every_rule_names_an_existing_env():
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        rules = re.findall(r"^rule (\w+):", text, flags=re.M)
        blocks = re.split(r"^rule \w+:", text, flags=re.M)[1:]
        for name, block in zip(rules, blocks, strict=True):
            m = re.search(r'conda:\s*\n\s*"\.\./(envs/[\w.-]+\.yaml)"', block)
            assert m, f"rule {name} in {smk.name} has no conda: env"
            assert (REPO / m.group(1)).is_file(), f"rule {name}: {m.group(1)} missing"


def test_env_files_parse_and_pins_match_requirements():
    pins = _requirements()
    for env in sorted((REPO / "envs").glob("*.yaml")):
        spec = yaml.safe_load(env.read_text())
        deps = spec["dependencies"]
        assert "python=3.11" in deps, env.name
        pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        for line in pip:
            name, _, version = line.partition("==")
            assert version, f"{env.name}: '{line}' is not pinned with =="
            if name.lower() in pins:
                assert pins[name.lower()] == version, f"{env.name}: {name}=={version} but requirements.txt pins {pins[name.lower()]}"
            elif env.name != "tensorrt.yaml":
                raise AssertionError(f"{env.name}: {name} is not in requirements.txt")
