from compressflow.smk import run
from compressflow.steps.layer_error import layer_error

run(snakemake, layer_error)  # noqa: F821 (injected by Snakemake)
