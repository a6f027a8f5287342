from compressflow.runtimes import onnxruntime
from compressflow.smk import run

run(snakemake, onnxruntime.step_quantize_onnxruntime)  # noqa: F821 (injected by Snakemake)
