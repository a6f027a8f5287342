from compressflow.quantize import mixed
from compressflow.smk import run

run(snakemake, mixed.step_analyze_sensitivity)  # noqa: F821 (injected by Snakemake)
