from compressflow.quantize import error
from compressflow.smk import run

run(snakemake, error.step_layer_error)  # noqa: F821 (injected by Snakemake)
