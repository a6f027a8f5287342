from compressflow.smk import run
from compressflow.steps.evaluate import evaluate

run(snakemake, evaluate)  # noqa: F821 (injected by Snakemake)
