"""Rule ``package_aoti``: AOTInductor packages (``.pt2``) of a float or PT2E INT8 model, loadable from C++.

``model.pt2`` is built for the latency size (what a deployment runs and what is timed); when the data's
size differs, ``accuracy.pt2`` is the same model built for the data's size, which top-1 is measured with.
"""

from __future__ import annotations

import sys
import tempfile

from compressflow import artifacts, files
from compressflow.quantize import pt2e
from compressflow.runtimes import compile as pt2
from compressflow.runtimes import pytorch


def package_aoti(inputs, outputs, params, threads):
    import torch

    torch.manual_seed(params["seed"])
    torch.set_num_threads(threads)
    recipe = artifacts.read_recipe(inputs["model"])
    quantized = pytorch.api(recipe) == "pt2e"  # a PT2E graph is rebuilt per size below; a float model once here
    model = None if quantized else artifacts.load_model(inputs["model"])[0]
    sizes = {"package": params["latency_size"], "accuracy": params["data_size"]}
    build = {"setting": pt2.SETTING, "dynamic": ["batch"], "precision": pytorch.precision(recipe), "quant_api": pytorch.api(recipe)}
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache, pt2.cache_dir(cache):
        for key, size in sizes.items():
            m = artifacts.load_model_at_size(inputs["model"], size) if quantized else model
            seconds = pt2.aoti_package(m, pt2e.example_input(size), outputs[key])
            build[key] = {"input_size": size, "build_s": round(seconds, 3)}
    files.write_json(build, outputs["build"])
    print(f"package_aoti: {build}", file=sys.stderr)
