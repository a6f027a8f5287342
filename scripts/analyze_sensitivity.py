from compressflow import quantize
from compressflow.smk import run

run(snakemake, quantize.step_analyze_sensitivity)  # noqa: F821 (injected by Snakemake)
