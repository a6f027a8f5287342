"""The summary table: one row per (model, variant, runtime), rendered to CSV and Markdown, and the report's figures."""

from __future__ import annotations

import csv
import math

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
    "collapsed_classes",
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
    rows, per_class = [], []
    for e in entries:
        m = io.read_json(e["metrics_path"])
        row = {k: m.get(k) for k in COLUMNS if k in m}
        row.update(model=e["model"], variant=e["variant"], parent=e["parent"], technique=e["technique"])
        rows.append(row)
        per_class.append(m.get("per_class_top1"))
    df = pd.DataFrame(rows).reindex(columns=COLUMNS)
    ref = df[(df.variant == "fp32") & (df.runtime == "pytorch")].set_index("model").top1
    df["top1_drop_vs_fp32"] = df.model.map(ref) - df.top1
    df["collapsed_classes"] = collapsed_classes(df, per_class, max_accuracy_drop)
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
    out = order.drop(columns=["_not_eager", "_not_root"]).reset_index(drop=True)
    out.attrs.update(max_accuracy_drop=max_accuracy_drop, n_classes=max((len(p) for p in per_class if p), default=0))
    return out


def collapsed_classes(df: pd.DataFrame, per_class: list, max_accuracy_drop: float) -> pd.Series:
    """Per row, the classes whose top-1 fell more than ``max_accuracy_drop`` below the same model's FP32 PyTorch row.

    An overall drop within budget can hide one class that collapsed;
    ``per_class`` holds each row's ``per_class_top1`` dict (class -> top-1) or None, in ``df`` order.
    Written ``"3 (-0.083); 8 (-0.028)"``; empty when none collapsed or a side has no per-class numbers.
    """
    base = {}
    for model, variant, runtime, pc in zip(df.model, df.variant, df.runtime, per_class, strict=True):
        if variant == "fp32" and runtime == "pytorch" and pc:
            base[model] = pc
    out = []
    for model, pc in zip(df.model, per_class, strict=True):
        ref = base.get(model)
        if not ref or not pc:
            out.append("")
            continue
        drops = [(c, pc[c] - ref[c]) for c in ref if pc.get(c) is not None and ref[c] is not None]
        # 1e-6 absorbs the float32 rounding in per-class accuracies: a drop equal to the budget is not "more than" it.
        out.append("; ".join(f"{c} ({d:+.3f})" for c, d in drops if -d > max_accuracy_drop + 1e-6))
    return pd.Series(out, index=df.index, dtype="object")


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
        "collapsed_classes",
        "note",
    ]
    head = f"# compressflow summary\n\nLatency: batch 1, {df.threads.dropna().unique().tolist()} thread(s), input {df.latency_input.dropna().unique().tolist()} px, on {', '.join(df.cpu_model.dropna().unique())} (ISA: {', '.join(df.isa.dropna().unique())}).\nSize in MiB of the saved file. Speed-ups compare each artifact with its parent timed in the same job.\n\n"
    table = df[show].astype("object").where(df[show].notna(), "")
    with io.atomic_path(md_path) as tmp:
        tmp.write_text(head + table.to_markdown(index=False, floatfmt=".4g") + "\n\n" + collapsed_section(df))


def collapsed_section(df: pd.DataFrame) -> str:
    """The Markdown section listing rows with collapsed classes, with what one test image is worth."""
    budget = df.attrs.get("max_accuracy_drop")
    n_test, n_classes = pd.to_numeric(df.n_test, errors="coerce").max(), df.attrs.get("n_classes", 0)
    text = "## Collapsed classes\n\n"
    text += "Classes whose per-class top-1 fell more than " + (f"{budget:g}" if budget is not None else "the accuracy budget")
    text += " below the same model's FP32 PyTorch row (column `collapsed_classes`, class (change in per-class top-1))."
    if pd.notna(n_test) and n_classes:
        per = n_test / n_classes
        text += (
            f" The test split has {int(n_test)} images over {n_classes} classes, about {per:.0f} per class:"
            f" one image is worth about {100 / per:.1f} pt of a class's top-1 ({100 / n_test:.2f} pt of overall top-1),"
            " so a single-image change already counts."
        )
    hit = df[df.collapsed_classes.fillna("") != ""]
    lines = [f"- {r.model} / {r.variant} / {r.runtime}: {r.collapsed_classes}" for r in hit.itertuples()]
    return text + "\n\n" + ("\n".join(lines) if lines else "none") + "\n"


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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(fig, png_path, dpi: int = 100) -> None:
    """PNG bytes depend only on the data: no software tag, fixed dpi."""
    with io.atomic_path(png_path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, metadata={"Software": None})


def pareto_plot(df: pd.DataFrame, png_path, pdf_path) -> None:
    """Top-1 vs latency per model; marker area = size, the front drawn, the recommended artifact starred."""
    import matplotlib.ticker

    plt = _pyplot()
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
    _save_png(fig, png_path, dpi=120)
    with io.atomic_path(pdf_path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="pdf", metadata={"CreationDate": None, "Producer": None, "Creator": None})
    plt.close(fig)


# ---------------------------------------------------------------- per-layer figures

SQNR_CAP_DB = 99.0  # an exact layer (zero error) has infinite SQNR: drawn at the cap


def _read_table(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _db(value) -> float:
    v = float(value)
    return SQNR_CAP_DB if math.isinf(v) and v > 0 else v


def placeholder_plot(png_path, message: str) -> None:
    """A small PNG that says why there is no figure: a report output must always exist."""
    plt = _pyplot()
    fig = plt.figure(figsize=(5, 1.2))
    fig.text(0.5, 0.5, message, ha="center", va="center", fontsize=10)
    _save_png(fig, png_path)
    plt.close(fig)


def sensitivity_plot(tables: dict, png_path) -> None:
    """Per model, the logit SQNR with only that unit INT8 (bars) and the resulting val top-1 change (red dots).

    ``tables``: model -> sensitivity.csv (columns layer, top1, top1_delta, sqnr_db, fp32_top1).
    """
    if not tables:
        placeholder_plot(png_path, "no sensitivity tables in this configuration")
        return
    plt = _pyplot()
    data = {m: _read_table(p) for m, p in sorted(tables.items())}
    widest = max(len(rows) for rows in data.values())
    fig, axes = plt.subplots(len(data), 1, figsize=(max(8.0, 2 + 0.28 * widest), 3.8 * len(data)), squeeze=False)
    for ax, (model, rows) in zip(axes[:, 0], data.items(), strict=True):
        x = range(len(rows))
        ax.bar(x, [_db(r["sqnr_db"]) for r in rows], color="tab:blue", alpha=0.7, label="logit SQNR (dB)")
        ax.set_ylabel("logit SQNR (dB)", color="tab:blue")
        ax.set_xticks(list(x), [r["layer"] for r in rows], rotation=90, fontsize=7)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.grid(axis="y", alpha=0.3)
        twin = ax.twinx()
        twin.plot(x, [100 * float(r["top1_delta"]) for r in rows], "o", color="tab:red", label="val top-1 change (pt)")
        twin.axhline(0, color="tab:red", lw=0.6, alpha=0.5)
        twin.set_ylabel("val top-1 change (pt)", color="tab:red")
        base = float(rows[0]["fp32_top1"]) if rows else float("nan")
        ax.set_title(f"{model}: one unit INT8 at a time (FP32 val top-1 {base:.3f})")
    fig.tight_layout()
    _save_png(fig, png_path)
    plt.close(fig)


def layer_error_plot(tables: dict, png_path) -> None:
    """Per model, each quantized variant's per-layer output SQNR vs its float parent: one line per variant.

    ``tables``: (model, variant) -> layer_error.csv (columns layer, mse, sqnr_db). Layers keep the
    order of the variant with the most layers; a variant without a layer (e.g. kept FP32) has a gap there.
    """
    if not tables:
        placeholder_plot(png_path, "no per-layer error tables in this configuration")
        return
    plt = _pyplot()
    by_model: dict = {}
    for (model, variant), path in sorted(tables.items()):
        by_model.setdefault(model, {})[variant] = {r["layer"]: _db(r["sqnr_db"]) for r in _read_table(path)}
    widest = max(len({n for v in variants.values() for n in v}) for variants in by_model.values())
    fig, axes = plt.subplots(len(by_model), 1, figsize=(max(9.0, 4 + 0.28 * widest), 4.2 * len(by_model)), squeeze=False)
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    for ax, (model, variants) in zip(axes[:, 0], by_model.items(), strict=True):
        layers = list(max(variants.values(), key=len))
        layers += sorted({n for v in variants.values() for n in v} - set(layers))
        for i, (variant, sqnr) in enumerate(variants.items()):
            y = [sqnr.get(n, float("nan")) for n in layers]
            ax.plot(
                range(len(layers)),
                y,
                linestyle=styles[(i // 10) % len(styles)],
                marker=markers[i % len(markers)],
                markersize=4,
                color=plt.cm.tab10(i % 10),
                label=variant,
            )
        ax.set_xticks(range(len(layers)), layers, rotation=90, fontsize=7)
        ax.set_ylabel(f"output SQNR vs float parent (dB, inf at {SQNR_CAP_DB:g})")
        ax.set_title(f"{model}: per-layer quantization error")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    _save_png(fig, png_path)
    plt.close(fig)
