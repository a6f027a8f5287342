from compressflow import runtimes
from compressflow.smk import run

run(snakemake, runtimes.step_evaluate_onnxruntime)  # noqa: F821 (injected by Snakemake)
