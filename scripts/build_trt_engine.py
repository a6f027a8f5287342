from compressflow import trt
from compressflow.smk import run

run(snakemake, trt.step_build_trt_engine)  # noqa: F821 (injected by Snakemake)
