"""table.tex must compile: booktabs, escaped names, NaN cells and the recommended star."""

import shutil
import subprocess

import pandas as pd
import pytest

from compressflow import report

DOCUMENT = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n\\input{table.tex}\n\\end{document}\n"
INSTALL = "apt-get install texlive-latex-base texlive-latex-recommended (.ci/run does this)"


def _table() -> pd.DataFrame:
    nan = float("nan")
    return pd.DataFrame(
        {
            "model": ["mobilenet_v2", "mobilenet_v2", "res_net", "res_net"],
            "variant": ["fp32", "prune_ch50/ptq_x86", "kd_pruned", "skipped_one"],
            "runtime": ["pytorch", "onnxruntime-int8", "open_vino", "tensorrt_fp16"],
            "top1": [0.95, nan, 0.9, nan],
            "size_mb": [8.9, 2.3, nan, nan],
            "latency_ms_p50": [4.2, 1.1, 2.5, nan],
            "speedup_vs_fp32": [1.0, 3.8, nan, nan],
            "faster_than_parent": [nan, True, False, nan],
            "recommended": [False, True, False, False],
            "top1_lo": [0.929, nan, 0.85, nan],
            "top1_hi": [0.971, nan, 0.94, nan],
            "latency_ms_p50_lo": [4.0, 1.0, 2.5, nan],
            "latency_ms_p50_hi": [4.5, 1.2, 2.7, nan],
            "mcnemar_p": [nan, 0.25, 0.0078, nan],
        }
    )


def _compile(tmp_path, tex: str) -> subprocess.CompletedProcess:
    (tmp_path / "table.tex").write_text(tex)
    (tmp_path / "doc.tex").write_text(DOCUMENT)
    cmd = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def pdflatex():
    if shutil.which("pdflatex") is None:
        pytest.skip(f"pdflatex not installed: {INSTALL}")
    kpse = shutil.which("kpsewhich")
    if kpse and not subprocess.run([kpse, "booktabs.sty"], capture_output=True, text=True).stdout.strip():
        pytest.skip(f"booktabs.sty not found: {INSTALL}")


def test_table_tex_compiles(tmp_path, pdflatex):
    report.latex_table(_table(), tmp_path / "generated.tex")
    tex = (tmp_path / "generated.tex").read_text()
    out = _compile(tmp_path, tex)
    assert out.returncode == 0, out.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
    assert r"\toprule" in tex and r"prune\_ch50/ptq\_x86 $\star$" in tex and "--" in tex
    assert "0.950 [0.929, 0.971]" in tex and "4.20 [4.00, 4.50]" in tex and "0.008" in tex
    assert "skipped" not in tex  # rows without a latency are left out


@pytest.mark.parametrize("style", ["pm", "none"])
def test_table_tex_interval_styles_compile(tmp_path, pdflatex, style):
    report.latex_table(_table(), tmp_path / "generated.tex", style)
    tex = (tmp_path / "generated.tex").read_text()
    out = _compile(tmp_path, tex)
    assert out.returncode == 0, out.stdout[-3000:]
    assert ("^{+" in tex) == (style == "pm") and "[0.929" not in tex


def test_broken_table_does_not_compile(tmp_path, pdflatex):
    """The check itself can fail: an unescaped underscore outside math mode stops pdflatex."""
    report.latex_table(_table(), tmp_path / "generated.tex")
    out = _compile(tmp_path, (tmp_path / "generated.tex").read_text().replace(r"mobilenet\_v2", "mobilenet_v2"))
    assert out.returncode != 0 and "Missing $ inserted" in out.stdout
    assert not (tmp_path / "doc.pdf").exists()
