from compressflow import quantize
from compressflow.smk import run

run(snakemake, quantize.step_convert_ptq)  # noqa: F821 (injected by Snakemake)
