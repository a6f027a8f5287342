from compressflow.smk import run
from compressflow.steps.fuse import fuse

run(snakemake, fuse)  # noqa: F821 (injected by Snakemake)
