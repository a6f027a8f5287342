from compressflow.quantize import dynamic
from compressflow.smk import run

run(snakemake, dynamic.step_quantize_dynamic)  # noqa: F821 (injected by Snakemake)
