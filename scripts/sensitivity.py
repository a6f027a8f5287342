from compressflow.smk import run
from compressflow.steps.sensitivity import sensitivity

run(snakemake, sensitivity)  # noqa: F821 (injected by Snakemake)
