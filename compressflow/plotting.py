"""The one matplotlib setup: a headless backend, and PNG bytes that depend only on the data."""

from __future__ import annotations

from compressflow import files

__all__ = ["pyplot", "save_png"]


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend (imported on first use: parsing never needs it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, png_path, dpi: int = 100) -> None:
    """Write ``fig`` atomically as PNG with no software tag and a fixed dpi (the caller closes it)."""
    with files.atomic_path(png_path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, metadata={"Software": None})
