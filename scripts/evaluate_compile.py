from compressflow.smk import run
from compressflow.steps.evaluate_compile import evaluate_compile

run(snakemake, evaluate_compile)  # noqa: F821 (injected by Snakemake)
