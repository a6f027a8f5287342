from compressflow import distill
from compressflow.smk import run

run(snakemake, distill.step_distill)  # noqa: F821 (injected by Snakemake)
