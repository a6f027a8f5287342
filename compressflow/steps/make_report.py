"""Rule ``make_report``: summary table, LaTeX, Pareto and diagnostic figures."""

from __future__ import annotations

from pathlib import Path

from compressflow import failures, files, report, unsupported

NOT_BUILT = "not built: a job it depends on failed (see the failures at the end of the run)"


def make_report(inputs, outputs, params, threads):
    # A skipped TensorRT row (no job ran for it) has no metrics file: the report writes its row from the reason.
    paths = iter(inputs["metrics"])
    entries = [dict(e, metrics_path=None if e.get("skipped") or e.get("failed") else next(paths)) for e in params["entries"]]
    if next(paths, None) is not None:
        raise ValueError("make_report: more metrics files than report entries")
    df = report.summarize(entries, params["min_speedup"], params["max_accuracy_drop"], options=params["stats"], seed=params["seed"])
    report.write(df, outputs["csv"], outputs["md"])
    report.latex_table(df, outputs["tex"], params["stats"]["latex_interval"])
    report.pareto_plot(df, outputs["pareto_png"], outputs["pareto_pdf"])
    # Tables of unsupported variants are markers, not tables: their rows in the summary say why.
    sensitivity = {
        m: p for m, p in zip(params["sensitivity_models"], _list(inputs["sensitivity"]), strict=True) if not unsupported.marker_of(p)
    }
    report.sensitivity_plot(sensitivity, outputs["sensitivity_png"])
    layer_tables = {
        (m, v): p
        for (m, v), p in zip(params["layer_error_tables"], _list(inputs["layer_error"]), strict=True)
        if not unsupported.marker_of(p)
    }
    report.layer_error_plot(layer_tables, outputs["layer_error_png"])


def _list(value):
    return value if isinstance(value, list) else [value]


def make_partial_report(inputs, outputs, params, records: list[dict]) -> list[str]:
    """The report of a run in which jobs failed: every finished row as usual, each row without its metrics file
    marked ``failed: ...`` (its own job failed) or :data:`NOT_BUILT`. Returns the rows so marked."""
    notes = failures.notes(records)
    paths = iter(_list(inputs["metrics"]))
    entries, marked = [], []
    for e in params["entries"]:
        if e.get("skipped"):
            entries.append(dict(e, metrics_path=None))
            continue
        path = next(paths)
        if Path(path).is_file():
            entries.append(dict(e, metrics_path=path))
        else:
            note = notes.get(str(path)) or notes.get((e["model"], e["variant"]), NOT_BUILT)
            entries.append(dict(e, metrics_path=None, failed=note))
            marked.append(f"{e['model']}/{e['variant']}/{e.get('runtime', 'pytorch')}")
    ready = {
        "metrics": [e["metrics_path"] for e in entries if e["metrics_path"]],
        "sensitivity": [p for p in _list(inputs["sensitivity"]) if Path(p).is_file()],
        "layer_error": [p for p in _list(inputs["layer_error"]) if Path(p).is_file()],
    }
    kept = dict(
        params,
        entries=[
            {k: v for k, v in e.items() if k != "metrics_path"}
            | (
                {"latency_failed": notes.get(str(e["benchmark_path"]), NOT_BUILT)}
                if e.get("benchmark_path") and e["metrics_path"] and not Path(e["benchmark_path"]).is_file()
                else {}
            )
            for e in entries
        ],
        sensitivity_models=[
            m for m, p in zip(params["sensitivity_models"], _list(inputs["sensitivity"]), strict=True) if Path(p).is_file()
        ],
        layer_error_tables=[
            t for t, p in zip(params["layer_error_tables"], _list(inputs["layer_error"]), strict=True) if Path(p).is_file()
        ],
    )
    # the last full report's record no longer describes these files: its rule reruns once the failures are fixed
    Path(outputs["provenance"]).unlink(missing_ok=True)
    make_report(ready, outputs, kept, 1)
    md = Path(outputs["md"])
    title, rest = md.read_text().split("\n", 1)
    warning = (
        f"**WARNING: a partial report: {len(records) or 'some'} job(s) failed, so {len(marked)} row(s) have no numbers;"
        " their notes say why (`failed: ...`, or `not built` when a job they depend on failed). Fix the cause and rerun:"
        " only the failed jobs and what depends on them run again.**"
    )
    with files.atomic_path(md) as tmp:
        tmp.write_text(f"{title}\n\n{warning}\n{rest}")
    return marked
