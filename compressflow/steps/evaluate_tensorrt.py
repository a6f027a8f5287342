"""Rule ``evaluate_tensorrt``: accuracy and latency of a TensorRT engine on the GPU."""

from __future__ import annotations

import sys

import torch

from compressflow import data, files, measure, models
from compressflow import evaluate as ev
from compressflow.runtimes import pytorch, tensorrt


def evaluate_tensorrt(inputs, outputs, params, threads):
    """Accuracy on the test split at the data's size; batch-1 latency at latency.input_size against the parent on the same GPU."""
    runtime, lat = params["runtime"], params["latency"]
    build_info = files.read_json(inputs["build"])
    if build_info.get("skipped"):
        print(f"{runtime}: skipped ({build_info['skipped']})", file=sys.stderr)
        files.write_json(tensorrt.skipped_metrics(runtime, build_info["skipped"], params["threads"], lat), outputs["metrics"])
        return
    torch.set_num_threads(params["threads"])
    test = data.load_split(inputs["test"])
    torch_model, torch_logits = pytorch.reference(inputs)
    engine = tensorrt.Engine(inputs["engine"])
    logits = tensorrt.predict(engine, test, min(params["batch_size"], params["tensorrt"]["max_batch"]))
    x = torch.zeros(1, 3, lat["input_size"], lat["input_size"], device="cuda")
    if inputs.get("parent_engine"):
        parent, parent_runtime = tensorrt.Engine(inputs["parent_engine"]), "tensorrt-fp16"
    else:
        gpu_model = torch_model.cuda().eval()

        def parent(x):
            with torch.no_grad():
                return gpu_model(x)

        parent_runtime = "pytorch-cuda"
    metrics = ev.metrics(
        runtime,
        logits,
        test,
        own_fn=tensorrt.timed_on_gpu(engine, x),
        parent_fn=tensorrt.timed_on_gpu(parent, x),
        size_mb=measure.size_mb(inputs["engine"]),
        params=models.count_params(torch_model),
        threads=params["threads"],
        latency=lat,
        parent_logits=torch_logits,
        accuracy_device="cuda",
        latency_device="cuda",
    )
    opt = params["tensorrt"]["opt_batch"]
    xb = torch.zeros(opt, 3, lat["input_size"], lat["input_size"], device="cuda")
    metrics["throughput_ips_opt_batch"] = measure.latency(tensorrt.timed_on_gpu(engine, xb), xb, warmup=lat["warmup"], iters=lat["iters"])[
        "throughput_ips"
    ]
    metrics.update(
        parent_runtime=parent_runtime,
        precision=build_info["precision"],
        int8_method=build_info.get("int8_method"),
        tensorrt=build_info["tensorrt"],
        gpu=torch.cuda.get_device_name(0),
        opt_batch=opt,
        latency_note="GPU time with inputs already on the device (no host<->device copies)",
    )
    print(
        f"{runtime}: top1 {metrics['top1']:.4f}, p50 {metrics['latency_ms_p50']:.3f} ms vs {parent_runtime} {metrics['parent_latency_ms_p50']:.3f} ms",
        file=sys.stderr,
    )
    files.write_json(metrics, outputs["metrics"])
