"""Rule ``make_report``: summary table, LaTeX, Pareto and diagnostic figures."""

from __future__ import annotations

from compressflow import report, unsupported


def make_report(inputs, outputs, params, threads):
    # A skipped TensorRT row (no job ran for it) has no metrics file: the report writes its row from the reason.
    paths = iter(inputs["metrics"])
    entries = [dict(e, metrics_path=None if e.get("skipped") else next(paths)) for e in params["entries"]]
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
