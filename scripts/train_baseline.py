from compressflow.smk import run
from compressflow.steps.train_baseline import train_baseline

run(snakemake, train_baseline)  # noqa: F821 (injected by Snakemake)
