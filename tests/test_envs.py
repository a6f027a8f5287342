"""Every rule runs in a conda env whose pins match the tested pip venv."""

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
