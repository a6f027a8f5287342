from compressflow.smk import run
from compressflow.steps.dynamic import dynamic

run(snakemake, dynamic)  # noqa: F821 (injected by Snakemake)
