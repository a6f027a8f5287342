from compressflow import quantize
from compressflow.smk import run

run(snakemake, quantize.step_quantize_dynamic)  # noqa: F821 (injected by Snakemake)
