"""Rule ``benchmark_artifact``: latency percentiles, throughput, peak memory and MACs of one artifact, timed alone
(at batch 1 in alternating blocks with its parent): the report's only source of CPU latencies."""

from __future__ import annotations

import tempfile

from compressflow import benchmark, files
from compressflow.runtimes import compile as pt2


def benchmark_artifact(inputs, outputs, params, threads):
    """One (model, variant, runtime): ``params['benchmark']`` is the config's benchmark section."""
    b = params["benchmark"]
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache, pt2.cache_dir(cache):  # PT2E artifacts compile
        out = _benchmark(b, inputs, params)
    out = {"model": params["model"], "variant": params["variant"], **out, "job_threads": threads}
    files.write_json(out, outputs["json"])


def _benchmark(b, inputs, params):
    return benchmark.benchmark(
        params["runtime"],
        inputs["artifact"],
        inputs["torch_model"],
        batch_sizes=b["batch_sizes"],
        warmup=b["warmup"],
        iters=b["iters"],
        input_size=b["input_size"],
        threads=b["threads"],
        ov_precision=params.get("ov_precision", "f32"),
        parent=(params["parent_runtime"], inputs["parent_artifact"]) if inputs.get("parent_artifact") else None,
    )
