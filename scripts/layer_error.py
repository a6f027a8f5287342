from compressflow import quantize
from compressflow.smk import run

run(snakemake, quantize.step_layer_error)  # noqa: F821 (injected by Snakemake)
