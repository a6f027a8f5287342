from compressflow.smk import run
from compressflow.steps.evaluate_tensorrt import evaluate_tensorrt

run(snakemake, evaluate_tensorrt)  # noqa: F821 (injected by Snakemake)
