from compressflow.smk import run
from compressflow.steps.quantize_onnxruntime import quantize_onnxruntime

run(snakemake, quantize_onnxruntime)  # noqa: F821 (injected by Snakemake)
