"""The Snakemake-facing glue: one module per rule, ``<rule>(inputs, outputs, params, threads)`` on plain dicts.

Each module imports only the library code its rule needs, so a rule's code digest
(:mod:`compressflow.codedigest`) changes only when that code does. The package imports none of them.
"""

__all__ = [
    "benchmark_artifact",
    "build_trt_engine",
    "collect_benchmarks",
    "convert_openvino",
    "distill",
    "dynamic",
    "evaluate",
    "evaluate_aoti",
    "evaluate_compile",
    "evaluate_onnxruntime",
    "evaluate_openvino",
    "evaluate_tensorrt",
    "export_onnx",
    "fuse",
    "layer_error",
    "make_report",
    "mixed",
    "mixed_pt2e",
    "package_aoti",
    "prepare_data",
    "prune_channels",
    "prune_l1",
    "ptq",
    "ptq_calibrate",
    "ptq_pt2e",
    "qat",
    "qat_pt2e",
    "quantize_onnxruntime",
    "quantize_openvino",
    "record_environment",
    "sensitivity",
    "train_baseline",
]
