# compressflow: turn a trained CNN into compressed, measured, reported artifacts.
from snakemake.utils import min_version, validate

min_version("9.0")


# A --configfile is the whole config (several overlay in the order given; the schema fills in the rest);
# config/config.yaml, the tour, is read only when none is given. Snakemake's own `configfile:` would merge
# a user's file into the tour and build the tour's variants too.
import os, sys, time

sys.path.insert(0, workflow.basedir)
from compressflow.config import read_config_files
from compressflow.errors import CompressflowError

TOUR = os.path.join(workflow.basedir, "config", "config.yaml")
CONFIG_FILES = list(workflow.overwrite_configfiles) or [TOUR]
try:
    # Duplicate keys and YAML syntax errors, as one line naming the file and line (PyYAML hides both).
    read_config_files([f for f in CONFIG_FILES if os.path.exists(f)])
except CompressflowError as _exc:
    sys.exit(f"compressflow config error: {_exc}")

if not workflow.overwrite_configfiles:

    configfile: TOUR


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


add_device(workflow.rules)
add_code_digests(workflow.rules)


onstart:
    if workflow.is_main_process:
        RUN_STARTED.append(time.time())
        check_device_here()


onerror:
    # Jobs failed (the profiles keep going, so everything independent of them finished): the report of
    # what was built, with the failed rows marked, then one line per failure as the run's last lines.
    if workflow.is_main_process and RUN_STARTED:
        report_failures(log)


rule all:
    default_target: True
    input:
        # evaluated while the DAG is built, so also when there is nothing to do
        unchanged_artifacts,
        rules.make_report.output,
        [f"results/report/sweeps/{s}.csv" for s in SWEEPS],
        [f"results/report/sweeps/{s}.png" for s in SWEEPS],
        rules.record_environment.output,
        quantize_targets(),
        rules.collect_benchmarks.output,
        all_artifacts(),
