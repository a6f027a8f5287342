from compressflow.smk import run
from compressflow.steps.make_report import make_report

run(snakemake, make_report)  # noqa: F821 (injected by Snakemake)
