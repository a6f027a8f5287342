from compressflow.smk import run
from compressflow.steps.evaluate_onnxruntime import evaluate_onnxruntime

run(snakemake, evaluate_onnxruntime)  # noqa: F821 (injected by Snakemake)
