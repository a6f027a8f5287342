from compressflow.smk import run
from compressflow.steps.build_trt_engine import build_trt_engine

run(snakemake, build_trt_engine)  # noqa: F821 (injected by Snakemake)
