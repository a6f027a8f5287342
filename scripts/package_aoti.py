from compressflow.smk import run
from compressflow.steps.package_aoti import package_aoti

run(snakemake, package_aoti)  # noqa: F821 (injected by Snakemake)
