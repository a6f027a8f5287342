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
            m = re.search(r'conda:\s*\n\s*(?:"\.\./(envs/[\w.-]+\.yaml)"|(\w+))', block)
            assert m, f"rule {name} in {smk.name} has no conda: env"
            if m.group(1):
                envs = [m.group(1)]
            else:  # a function in common.smk that picks the env per job
                body = re.search(rf"^def {m.group(2)}\(.*?(?=^\S)", (REPO / "rules" / "common.smk").read_text(), flags=re.M | re.S)
                assert body, f"rule {name}: conda function {m.group(2)} not in common.smk"
                envs = re.findall(r'"\.\./(envs/[\w.-]+\.yaml)"', body.group(0))
            assert envs, f"rule {name}: no env file named"
            for env in envs:
                assert (REPO / env).is_file(), f"rule {name}: {env} missing"


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
