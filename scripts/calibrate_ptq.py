from compressflow import quantize
from compressflow.smk import run

run(snakemake, quantize.step_calibrate_ptq)  # noqa: F821 (injected by Snakemake)
