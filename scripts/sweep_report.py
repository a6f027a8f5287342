from compressflow.smk import run
from compressflow.steps.sweep_report import sweep_report

run(snakemake, sweep_report)  # noqa: F821 (injected by Snakemake)
