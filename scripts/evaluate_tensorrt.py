from compressflow import trt
from compressflow.smk import run

run(snakemake, trt.step_evaluate_tensorrt)  # noqa: F821 (injected by Snakemake)
