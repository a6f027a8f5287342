"""A sweep's table and figure, from the summary table: each point's top-1, latency and size against its knob.

One knob: three panels stacked for one column (top-1, latency p50, size), one line per model and
runtime, the swept value on the x axis, each point with its interval (Wilson for top-1, the bootstrap
for latency; with ``repeats``, the mean and the standard deviation over seeds). Two knobs or more: a
heat map of top-1 and one of latency per model and runtime, the first knob down, the others across.
"""

from __future__ import annotations

import math

import pandas as pd

from compressflow import files, plotting
from compressflow.report import STATS, latex_interval
from compressflow.sweeps import value_text

METRICS = [
    ("top1", "top-1 (test)"),
    ("latency_ms_p50", "latency p50 (ms)"),
    ("size_mb", "size (MiB)"),
]


def table(summary: pd.DataFrame, sweep: dict) -> pd.DataFrame:
    """One row per point and runtime row: the knobs' values, then the metrics with their intervals."""
    points, axes = sweep["points"], sweep["axes"]
    rows = []
    for _, r in summary.iterrows():
        base = r.variant.split(" (mean of ")[0]
        if base not in points:
            continue
        aggregate = " (mean of " in r.variant
        same = (summary.model == r.model) & (summary.runtime == r.runtime)
        if not aggregate and (same & summary.variant.str.startswith(f"{base} (mean of ")).any():
            continue  # the aggregate row speaks for the seeds
        row = {k: points[base][k] for k in axes}
        row.update(model=r.model, runtime=r.runtime, variant=base)
        for metric in ("top1", "latency_ms_p50"):
            row[metric] = r[metric]
            if aggregate:
                std = r.get(f"{metric}_std")
                row[f"{metric}_lo"], row[f"{metric}_hi"] = r[metric] - std, r[metric] + std
            else:
                row[f"{metric}_lo"], row[f"{metric}_hi"] = r.get(f"{metric}_lo"), r.get(f"{metric}_hi")
        row.update(size_mb=r.size_mb, n_seeds=r.n_seeds if aggregate else 1, note=r.note if isinstance(r.note, str) else "")
        rows.append(row)
    columns = [*axes, "model", "runtime", "variant", "top1", "top1_lo", "top1_hi", "latency_ms_p50", "latency_ms_p50_lo"]
    columns += ["latency_ms_p50_hi", "size_mb", "n_seeds", "note"]
    out = pd.DataFrame(rows, columns=columns)
    # points in the order the config lists each knob's values (so lines run along the axis)
    rank = {k: {value_text(v): i for i, v in enumerate(sweep["values"][k])} for k in axes}
    keys = [tuple(rank[k][value_text(r[k])] for k in axes) for _, r in out.iterrows()]
    out = out.assign(_rank=keys).sort_values(["model", "runtime", "_rank"]).drop(columns="_rank")
    return out.reset_index(drop=True)


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def figure(df: pd.DataFrame, sweep: dict, name: str, png_path, pdf_path) -> None:
    plt = plotting.style()
    axes = sweep["axes"]
    if df.empty or df.top1.isna().all():
        fig, ax = plt.subplots(figsize=(plotting.COLUMN_IN, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"sweep {name}: no point was measured", ha="center", va="center")
    elif len(axes) == 1:
        fig = _lines(plt, df, axes[0], name, sweep)
    else:
        fig = _heatmaps(plt, df, axes, name, sweep)
    plotting.save_png(fig, png_path, dpi=200)
    plotting.save_pdf(fig, pdf_path)
    plt.close(fig)


def _lines(plt, df, knob, name, sweep):
    values = list(sweep["values"][knob])
    numeric = _numeric(values)
    position = {v if numeric else str(v): (v if numeric else i) for i, v in enumerate(values)}
    fig, panels = plt.subplots(len(METRICS), 1, figsize=(plotting.COLUMN_IN, 4.2), sharex=True)
    level = f"{100 * STATS['confidence']:g}%"
    groups = list(df.groupby(["model", "runtime"], sort=True))
    for i, ((model, runtime), g) in enumerate(groups):
        x = [position[v if numeric else str(v)] for v in g[knob]]
        label = f"{model} · {runtime}" if df.model.nunique() > 1 else runtime
        for ax, (metric, _) in zip(panels, METRICS, strict=True):
            y = pd.to_numeric(g[metric], errors="coerce")
            kw = {
                "color": plotting.PALETTE[i % len(plotting.PALETTE)],
                "marker": plotting.MARKERS[i % len(plotting.MARKERS)],
                "label": label,
            }
            if f"{metric}_lo" in g:
                lo = (y - pd.to_numeric(g[f"{metric}_lo"], errors="coerce")).fillna(0).clip(lower=0)
                hi = (pd.to_numeric(g[f"{metric}_hi"], errors="coerce") - y).fillna(0).clip(lower=0)
                ax.errorbar(x, y, yerr=[lo, hi], capsize=2, elinewidth=0.7, **kw)
            else:
                ax.plot(x, y, **kw)
    for ax, (_metric, label) in zip(panels, METRICS, strict=True):
        ax.set_ylabel(label)
    seeds = df.n_seeds.max() if "n_seeds" in df else 1
    interval = "mean ± std over seeds" if seeds and seeds > 1 else f"{level} intervals"
    panels[0].set_title(f"sweep {name}: {sweep['technique']}, {interval}")
    panels[-1].set_xlabel(knob)
    if not numeric:
        panels[-1].set_xticks(list(position.values()), list(position))
    handles, labels = panels[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), frameon=False, bbox_to_anchor=(0.5, 0))
    fig.tight_layout(rect=(0, 0.04 * math.ceil(len(labels) / 3) + 0.02, 1, 1))
    return fig


def _heatmaps(plt, df, axes, name, sweep):
    """Small multiples of heat maps: the first knob down, the second across, one row of panels (top-1, latency)
    per model, runtime and value of the other knobs. Colour limits span the data with a margin, so a 0.3 pt
    difference does not look like the whole scale; every cell is labelled with its value."""
    row_knob, col_knob, rest = axes[0], axes[1], axes[2:]
    df = df.assign(_panel=[" · ".join([r.model, r.runtime, *(f"{k}={value_text(r[k])}" for k in rest)]) for _, r in df.iterrows()])
    panels = list(dict.fromkeys(df._panel))
    rows = [value_text(v) for v in sweep["values"][row_knob]]
    cols = [value_text(v) for v in sweep["values"][col_knob]]
    fig, grid = plt.subplots(
        len(panels), 2, figsize=(plotting.COLUMN_IN, 0.55 + 0.32 * len(rows) * len(panels) + 0.35 * len(panels)), squeeze=False
    )
    limits = {}
    for metric, lo_pad, hi_pad in (("top1", 0.05, 0.01), ("latency_ms_p50", None, None)):
        vals = pd.to_numeric(df[metric], errors="coerce").dropna()
        if vals.empty:
            limits[metric] = (0, 1)
        elif lo_pad is None:
            limits[metric] = (0, float(vals.max()))
        else:
            limits[metric] = (max(0.0, float(vals.min()) - lo_pad), min(1.0, float(vals.max()) + hi_pad))
    for panel, (ax_acc, ax_lat) in zip(panels, grid, strict=True):
        g = df[df._panel == panel].assign(_r=lambda d: d[row_knob].map(value_text), _c=lambda d: d[col_knob].map(value_text))
        for ax, metric, title, fmt, cmap in (
            (ax_acc, "top1", "top-1", "{:.3f}", "viridis"),
            (ax_lat, "latency_ms_p50", "latency p50 (ms)", "{:.3g}", "cividis"),
        ):
            cells = g.pivot_table(index="_r", columns="_c", values=metric, aggfunc="first").reindex(index=rows, columns=cols)
            values = cells.to_numpy(dtype=float)
            vmin, vmax = limits[metric]
            image = ax.imshow(values, cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
            for i in range(values.shape[0]):
                for j in range(values.shape[1]):
                    if pd.notna(values[i, j]):
                        shade = image.cmap(image.norm(values[i, j]))
                        dark = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.55
                        ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=5.5, color="black" if dark else "white")
            ax.set_xticks(range(len(cols)), cols)
            ax.set_yticks(range(len(rows)), rows)
            ax.grid(False)
            ax.set_title(title, fontsize=6)
            ax.set_xlabel(col_knob)
        ax_acc.set_ylabel(row_knob)
        ax_acc.text(0, 1.22, panel, transform=ax_acc.transAxes, fontsize=6, fontweight="bold", ha="left", va="bottom")
        ax_lat.set_yticklabels([])
    fig.suptitle(f"sweep {name}", fontsize=7)
    fig.tight_layout()
    return fig


def latex(df: pd.DataFrame, sweep: dict, path) -> None:
    """A booktabs table: the knobs, then top-1 [interval], latency p50 [interval] and size."""
    axes = sweep["axes"]
    head = [*axes, "model", "runtime", "top-1", "latency p50 (ms)", "size (MiB)"]
    lines = ["\\begin{tabular}{" + "l" * (len(axes) + 2) + "rrr}", "\\toprule", " & ".join(_tex(h) for h in head) + " \\\\", "\\midrule"]
    for _, r in df.iterrows():
        cells = [_tex(str(r[k])) for k in axes] + [_tex(r.model), _tex(r.runtime)]
        cells.append(latex_interval(r.top1, r.top1_lo, r.top1_hi, ".3f", "brackets"))
        cells.append(latex_interval(r.latency_ms_p50, r.latency_ms_p50_lo, r.latency_ms_p50_hi, ".3g", "brackets"))
        cells.append("--" if pd.isna(r.size_mb) else f"{r.size_mb:.3g}")
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    with files.atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _tex(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#"), ("$", "\\$")):
        text = str(text).replace(a, b)
    return text
