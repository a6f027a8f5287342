"""Rule ``package_aoti``: an AOTInductor package (``.pt2``) of a float or PT2E INT8 model, loadable from C++."""

from __future__ import annotations

import sys
import tempfile

import torch

from compressflow import artifacts, files
from compressflow.quantize import pt2e
from compressflow.runtimes import compile as pt2
from compressflow.runtimes import pytorch


def package_aoti(inputs, outputs, params, threads):
    torch.manual_seed(params["seed"])
    torch.set_num_threads(threads)
    model, recipe = artifacts.load_model(inputs["model"])
    size = params["input_size"]
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache, pt2.cache_dir(cache):
        seconds = pt2.aoti_package(model, pt2e.example_input(size), outputs["package"])
    build = {"build_s": round(seconds, 3), "input_size": size, "dynamic": ["batch", "height", "width"], "setting": pt2.SETTING}
    build.update(precision=pytorch.precision(recipe), quant_api=pytorch.api(recipe))
    files.write_json(build, outputs["build"])
    print(f"package_aoti: {build}", file=sys.stderr)
