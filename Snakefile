# compressflow: turn a trained CNN into compressed, measured, reported artifacts.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/fuse.smk"
include: "rules/prune.smk"
include: "rules/distill.smk"
include: "rules/quantize.smk"
include: "rules/evaluate.smk"
include: "rules/export.smk"
include: "rules/deploy.smk"
include: "rules/trt.smk"
include: "rules/report.smk"
include: "rules/benchmark.smk"
include: "rules/provenance.smk"


add_code_digests(workflow.rules)


rule all:
    default_target: True
    input:
        rules.make_report.output,
        rules.record_environment.output,
        quantize_targets(),
        rules.collect_benchmarks.output,
