"""The one matplotlib setup: a headless backend, and PNG bytes that depend only on the data."""

from __future__ import annotations

from compressflow import files

__all__ = ["pyplot", "style", "save_png", "save_pdf", "PALETTE", "MARKERS", "COLUMN_IN"]

#: Okabe & Ito's colour-blind-safe palette (Color Universal Design), in its usual order without black.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
MUTED = "#9a9a9a"
COLUMN_IN = 3.3  # one column of a two-column paper: every figure of the report is drawn at this width


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend (imported on first use: parsing never needs it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, png_path, dpi: int = 100, tight: bool = True) -> None:
    """Write ``fig`` atomically as PNG with no software tag and a fixed dpi (the caller closes it); ``tight`` crops
    the margins (a figure holding only text keeps its size with ``tight=False``)."""
    bbox = {"bbox_inches": "tight", "pad_inches": 0.03} if tight else {}
    with files.atomic_path(png_path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, metadata={"Software": None}, **bbox)


def style():
    """``pyplot`` with the one style of the report's figures: type that stays readable at one column width."""
    plt = pyplot()
    plt.rcParams.update(
        {
            "font.size": 7,
            "axes.titlesize": 7,
            "axes.labelsize": 7,
            "xtick.labelsize": 6,
            "ytick.labelsize": 6,
            "legend.fontsize": 6,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "lines.linewidth": 1.0,
            "lines.markersize": 3.5,
            "pdf.fonttype": 42,
        }
    )
    return plt


def save_pdf(fig, pdf_path) -> None:
    """Write ``fig`` atomically as PDF without dates or producer strings (same figure, same bytes)."""
    with files.atomic_path(pdf_path) as tmp, open(tmp, "wb") as f:
        fig.savefig(
            f, format="pdf", metadata={"CreationDate": None, "Producer": None, "Creator": None}, bbox_inches="tight", pad_inches=0.03
        )
