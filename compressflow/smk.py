"""The one bridge between a Snakemake ``script:`` and a library step.

Every step has the signature ``step(inputs, outputs, params, threads)`` with plain dicts,
so it is testable without Snakemake. ``run`` sends stderr to the rule's log, turns a
:class:`CompressflowError` into one line (in the log and on the console) and a non-zero
exit, and writes the job's ``provenance`` output after the step succeeded.
"""

from __future__ import annotations

import errno
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

from compressflow import failures, files, phases, provenance, unsupported, verify
from compressflow.errors import CompressflowError

REPO_DIR = Path(__file__).resolve().parent.parent
DISK_ERRORS = {
    errno.ENOSPC: "free disk space (or point the run at a larger disk) and rerun",
    errno.EDQUOT: "free space within your quota and rerun",
    errno.EACCES: "make the results/ and logs/ folders writable and rerun",
    errno.EROFS: "run the workflow from a writable directory",
}


def _disk_error(exc: BaseException) -> OSError | None:
    """The disk-level OSError behind ``exc`` (torch.save wraps ENOSPC in a RuntimeError)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _data_workers(smk) -> None:
    """dataset.workers (DataLoader processes) and dataset.max_image_pixels (a limit the parse already enforced):
    not params, since no byte depends on them, so changing them reruns nothing."""
    dataset = (getattr(smk, "config", None) or {}).get("dataset", {})
    if dataset.get("workers") or dataset.get("max_image_pixels"):
        from compressflow import data

        if dataset.get("workers"):
            data.WORKERS = int(dataset["workers"])
        if dataset.get("max_image_pixels"):
            data.MAX_PIXELS_LIMIT = int(dataset["max_image_pixels"])


def run(smk, step) -> None:
    clock = phases.Clock()
    clock.seconds["start"] = phases.process_age() or 0.0
    console = sys.stderr
    log = open(smk.log[0], "w", buffering=1) if smk.log else console
    sys.stderr = log
    inputs, outputs, params = dict(smk.input.items()), dict(smk.output.items()), dict(smk.params.items())
    for out in outputs.values():
        for stale in files.remove_stale_temporaries(out):
            print(f"removed {stale}, left by an interrupted run", file=log)
    wildcards, log_path = dict(smk.wildcards.items()), (smk.log[0] if smk.log else None)
    failures.clear(smk.rule, wildcards)
    try:
        try:
            with clock.phase("verify"):
                verify.inputs(inputs)  # nothing is built from an artifact whose bytes changed since it was made
            _data_workers(smk)
            if not _propagate_unsupported(smk, inputs, outputs, log):
                with clock.step(), _rule_named(outputs.get("metrics"), smk.rule):
                    step(inputs, outputs, params, smk.threads)
        except unsupported.Unsupported as exc:
            # A known limitation of this technique on this architecture: this variant says so, the run goes on.
            _write_unsupported(smk, exc, outputs, log, console)
        except CompressflowError:
            raise
        except Exception as exc:
            disk = _disk_error(exc) if isinstance(exc, (OSError, RuntimeError)) else None
            if disk is not None:
                where = disk.filename or ", ".join(map(str, outputs.values()))
                raise CompressflowError(f"cannot write '{where}': {disk.strerror}", DISK_ERRORS[disk.errno]) from exc
            # from inside the library this rule applies (or the model's forward): an unsupported row; else a bug
            found = unsupported.from_exception(exc, smk.rule, wildcards, log_path)
            if found is None:
                raise
            traceback.print_exc(file=log)
            _write_unsupported(smk, found, outputs, log, console)
    except CompressflowError as exc:
        _fail(smk, exc, wildcards, log_path, outputs, log, console, f"compressflow error in rule {smk.rule} ({_where(smk)}): {exc}")
    except Exception as exc:
        traceback.print_exc(file=log)
        line = (
            f"compressflow: rule {smk.rule} ({_where(smk)}) failed: {type(exc).__name__}: {unsupported.first_line(exc, 300)}"
            f"; a bug, please report it with the traceback in {log_path or 'the output above'}"
        )
        _fail(smk, exc, wildcards, log_path, outputs, log, console, line)
    with clock.phase("provenance"):
        if "provenance" in outputs:
            job = {k: v for k, v in outputs.items() if k != "provenance"}
            provenance.write(
                outputs["provenance"],
                rule=smk.rule,
                inputs=inputs,
                outputs=job,
                params=params,
                seed=params.get("seed"),
                repo_dir=REPO_DIR,
                device=_device_used(params),
            )
    print(clock.line(smk.rule), file=log)


def _say(line: str, log, console) -> None:
    """A line in the job's log and on the console."""
    print(line, file=log)
    if log is not console:
        print(line, file=console)


def _write_unsupported(smk, exc: unsupported.Unsupported, outputs: dict, log, console) -> None:
    _say(f"compressflow: unsupported in rule {smk.rule} ({_where(smk)}): {exc}", log, console)
    unsupported.write_markers(outputs, exc.reason, exc.fix, extra_json=_unsupported_metrics(smk, exc.reason, exc.fix))


def _fail(smk, exc: BaseException, wildcards: dict, log_path, outputs: dict, log, console, line: str) -> None:
    """One line on the console and in the log, a failure record for the run's closing lines and report, exit 1."""
    _say(line, log, console)
    failures.write(smk.rule, wildcards, exc, log_path, outputs)
    sys.exit(1)


def _device_used(params: dict) -> str | None:
    """Where a device rule's job ran (``cpu``, ``cuda:0 NVIDIA H200``); None for rules without the ``device`` param."""
    if "device" not in params:
        return None
    from compressflow import device

    return device.used() or "cpu"


# Rules that gather many variants' records: an unsupported record among their inputs is a row, not a reason to skip.
GATHERING_RULES = ("make_report", "collect_benchmarks", "record_environment")


def _where(smk) -> str:
    return ", ".join(f"{k}={v}" for k, v in smk.wildcards.items())


def _unsupported_metrics(smk, reason: str, fix: str) -> dict:
    """What a metrics.json of an unsupported job holds besides the status: the row's runtime and a note for the report."""
    return {
        "rule": smk.rule,
        "runtime": dict(smk.wildcards.items()).get("runtime", "pytorch"),
        "note": f"unsupported: {reason}; fix: {fix}",
    }


def _propagate_unsupported(smk, inputs: dict, outputs: dict, log) -> bool:
    """If an input artifact is an unsupported marker, write this job's outputs as markers too (and skip the step)."""
    if smk.rule in GATHERING_RULES:
        return False
    artifacts_in = {k: v for k, v in inputs.items() if not str(v).endswith(".json")}
    found = unsupported.unsupported_input(artifacts_in)
    if found is None:
        return False
    source, rec = found
    reason, fix = rec.get("reason", "unsupported"), rec.get("fix", "")
    print(f"compressflow: unsupported in rule {smk.rule} ({_where(smk)}): its input '{source}' is unsupported ({reason})", file=log)
    unsupported.write_markers(outputs, reason, fix, source, extra_json=_unsupported_metrics(smk, reason, fix))
    return True


@contextmanager
def _rule_named(metrics_path, rule: str):
    """While the step runs, its ``metrics.json`` is written with the rule's name as first key (no second write)."""
    if not metrics_path or not str(metrics_path).endswith(".json"):
        yield
        return
    original = files.write_json

    def write_json(obj, path):
        if str(path) == str(metrics_path) and isinstance(obj, dict):
            obj = {"rule": rule, **{k: v for k, v in obj.items() if k != "rule"}}
        return original(obj, path)

    files.write_json = write_json
    try:
        yield
    finally:
        files.write_json = original
