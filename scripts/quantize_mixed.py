from compressflow import quantize
from compressflow.smk import run

run(snakemake, quantize.step_quantize_mixed)  # noqa: F821 (injected by Snakemake)
