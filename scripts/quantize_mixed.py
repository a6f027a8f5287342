from compressflow.quantize import mixed
from compressflow.smk import run

run(snakemake, mixed.step_quantize_mixed)  # noqa: F821 (injected by Snakemake)
