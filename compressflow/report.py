"""The summary table: one row per (model, variant, runtime), rendered to CSV and Markdown."""

from __future__ import annotations

import pandas as pd

from compressflow import io

COLUMNS = [
    "model",
    "variant",
    "runtime",
    "parent",
    "technique",
    "top1",
    "top5",
    "top1_drop_vs_fp32",
    "size_mb",
    "params",
    "latency_ms_p50",
    "latency_ms_p90",
    "throughput_ips",
    "parent_latency_ms_p50",
    "speedup_vs_parent",
    "faster_than_parent",
    "top1_agreement_vs_parent",
    "mse_vs_parent",
    "max_abs_diff_vs_parent",
    "cosine_vs_parent",
    "n_test",
    "threads",
    "latency_input",
    "cpu_model",
    "isa",
    "note",
]


def summarize(entries: list[dict], min_speedup: float, max_accuracy_drop: float = 0.01) -> pd.DataFrame:
    """``entries``: dicts with model, variant, parent, technique and metrics_path."""
    rows = []
    for e in entries:
        m = io.read_json(e["metrics_path"])
        row = {k: m.get(k) for k in COLUMNS if k in m}
        row.update(model=e["model"], variant=e["variant"], parent=e["parent"], technique=e["technique"])
        rows.append(row)
    df = pd.DataFrame(rows).reindex(columns=COLUMNS)
    ref = df[(df.variant == "fp32") & (df.runtime == "pytorch")].set_index("model").top1
    df["top1_drop_vs_fp32"] = df.model.map(ref) - df.top1
    has_parent = df.speedup_vs_parent.notna()
    df["faster_than_parent"] = df.faster_than_parent.astype("object")
    df.loc[has_parent, "faster_than_parent"] = df.loc[has_parent, "speedup_vs_parent"] >= min_speedup
    compressed = df.technique.isin(["fuse", "prune_channels", "prune_l1", "ptq", "qat", "dynamic", "mixed", "distill"])
    slow = has_parent & compressed & (df.faster_than_parent == False)  # noqa: E712 (object column)
    df["note"] = df.note.astype("object")
    df.loc[slow, "note"] = f"compressed but not faster (speedup < {min_speedup:g}x)"
    eager = df[(df.variant == "fp32") & (df.runtime == "pytorch")].set_index("model").latency_ms_p50
    df["speedup_vs_fp32"] = df.model.map(eager) / df.latency_ms_p50
    df["recommended"] = recommend(df, max_accuracy_drop)
    order = df.assign(_not_eager=df.runtime != "pytorch", _not_root=df.variant != "fp32")
    order = order.sort_values(["model", "_not_eager", "runtime", "_not_root", "variant"])
    return order.drop(columns=["_not_eager", "_not_root"]).reset_index(drop=True)


def write(df: pd.DataFrame, csv_path, md_path) -> None:
    with io.atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    show = [
        "model",
        "variant",
        "runtime",
        "parent",
        "top1",
        "top5",
        "size_mb",
        "params",
        "latency_ms_p50",
        "latency_ms_p90",
        "speedup_vs_parent",
        "faster_than_parent",
        "top1_agreement_vs_parent",
        "note",
    ]
    head = f"# compressflow summary\n\nLatency: batch 1, {df.threads.dropna().unique().tolist()} thread(s), input {df.latency_input.dropna().unique().tolist()} px, on {', '.join(df.cpu_model.dropna().unique())} (ISA: {', '.join(df.isa.dropna().unique())}).\nSize in MiB of the saved file. Speed-ups compare each artifact with its parent timed in the same job.\n\n"
    table = df[show].astype("object").where(df[show].notna(), "")
    with io.atomic_path(md_path) as tmp:
        tmp.write_text(head + table.to_markdown(index=False, floatfmt=".4g") + "\n")


def recommend(df: pd.DataFrame, max_accuracy_drop: float) -> pd.Series:
    """Per model, the fastest row whose top-1 drop vs the FP32 baseline is within budget."""
    out = pd.Series(False, index=df.index)
    ok = df[(df.top1_drop_vs_fp32 <= max_accuracy_drop + 1e-12) & df.latency_ms_p50.notna()]
    for _, group in ok.groupby("model"):
        out[group.latency_ms_p50.idxmin()] = True
    return out


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """Rows not dominated by another row with lower-or-equal latency and higher-or-equal top-1."""
    pts = points.sort_values(["latency_ms_p50", "top1"], ascending=[True, False])
    best, keep = -1.0, []
    for idx, row in pts.iterrows():
        if row.top1 > best:
            keep.append(idx)
            best = row.top1
    return pts.loc[keep]


def latex_table(df: pd.DataFrame, path) -> None:
    """A booktabs table for the paper: accuracy, size, latency, speed-up vs FP32 eager."""
    cols = {
        "model": "Model",
        "variant": "Variant",
        "runtime": "Runtime",
        "top1": "Top-1",
        "size_mb": "Size (MiB)",
        "latency_ms_p50": "p50 (ms)",
        "speedup_vs_fp32": "Speed-up",
        "faster_than_parent": "Faster",
    }
    t = df[df.latency_ms_p50.notna()][list(cols)].copy()
    t["faster_than_parent"] = t.faster_than_parent.map({True: "yes", False: "no"}).fillna("")
    t["variant"] = t.variant + df.loc[t.index, "recommended"].map({True: r" $\star$", False: ""})
    for c in ("model", "variant", "runtime"):
        t[c] = t[c].str.replace("_", r"\_", regex=False)
    styler = (
        t.rename(columns=cols)
        .style.hide(axis="index")
        .format({"Top-1": "{:.3f}", "Size (MiB)": "{:.2f}", "p50 (ms)": "{:.2f}", "Speed-up": "{:.2f}"}, na_rep="--")
    )
    latex = styler.to_latex(hrules=True, column_format="lll" + "r" * (len(cols) - 3))
    with io.atomic_path(path) as tmp:
        tmp.write_text(latex)


def pareto_plot(df: pd.DataFrame, png_path, pdf_path) -> None:
    """Top-1 vs latency per model; marker area = size, the front drawn, the recommended artifact starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    data = df[df.latency_ms_p50.notna() & df.top1.notna()]
    models = sorted(data.model.unique())
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(6 * max(1, len(models)), 4.5), squeeze=False)
    runtimes = sorted(data.runtime.unique())
    colors = {r: plt.cm.tab10(i % 10) for i, r in enumerate(runtimes)}
    for ax, model in zip(axes[0], models, strict=False):
        d = data[data.model == model]
        for runtime, g in d.groupby("runtime"):
            ax.scatter(g.latency_ms_p50, g.top1, s=20 + 4 * g.size_mb, alpha=0.6, color=colors[runtime], label=runtime)
            for _, row in g.iterrows():
                ax.annotate(row.variant, (row.latency_ms_p50, row.top1), fontsize=7, xytext=(3, 3), textcoords="offset points")
        front = pareto_front(d)
        ax.step(front.latency_ms_p50, front.top1, where="post", color="black", lw=1, label="Pareto front")
        rec = d[d.recommended == True]  # noqa: E712
        ax.scatter(rec.latency_ms_p50, rec.top1, marker="*", s=300, color="gold", edgecolor="black", label="recommended", zorder=5)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"latency p50 (ms, batch 1, {int(d.latency_input.max())} px)")
        ax.set_ylabel("top-1 (test)")
        ax.set_title(model)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with io.atomic_path(png_path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=120, metadata={"Software": None})
    with io.atomic_path(pdf_path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="pdf", metadata={"CreationDate": None, "Producer": None, "Creator": None})
    plt.close(fig)
