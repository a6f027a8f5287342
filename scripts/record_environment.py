from compressflow.smk import run
from compressflow.steps.record_environment import record_environment

run(snakemake, record_environment)  # noqa: F821 (injected by Snakemake)
