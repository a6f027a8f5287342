from compressflow.runtimes import tensorrt
from compressflow.smk import run

run(snakemake, tensorrt.step_evaluate_tensorrt)  # noqa: F821 (injected by Snakemake)
