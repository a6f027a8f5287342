from compressflow.smk import run
from compressflow.steps.evaluate_aoti import evaluate_aoti

run(snakemake, evaluate_aoti)  # noqa: F821 (injected by Snakemake)
