"""`snakemake --report`'s HTML, opened in a real browser (headless Chromium): the page renders, the summary
table is listed, and every figure it embeds decodes in the browser."""

import re
import shutil
import subprocess

import pytest

from tests.conftest import assert_picture, snakemake

INSTALL = "apt-get install chromium (.ci/run does this)"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=15000"]


def _chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.skip(f"no headless browser: {INSTALL}")
    return found


def _browser(chromium, *args, timeout=120):
    return subprocess.run([chromium, *FLAGS, *args], capture_output=True, text=True, timeout=timeout)


def test_the_html_report_renders_in_a_browser_with_every_figure(tiny_copy, tmp_path):
    chromium = _chromium()
    html = tmp_path / "report.html"
    snakemake(tiny_copy, "--cores", "1", "--report", str(html))
    text = html.read_text()
    # the page: the report's scripts build it in the browser, so its DOM lists the results, the summary first
    dom = _browser(chromium, "--dump-dom", html.as_uri()).stdout
    for needle in ("Snakemake Report", "Summary", "Figures"):
        assert needle in dom, needle
    shot = tmp_path / "first_page.png"
    _browser(chromium, "--window-size=1200,900", f"--screenshot={shot}", html.as_uri())
    assert_picture(shot, min_px=(1200, 900), min_colours=64)
    # every figure registered with report(): embedded, and decoded by the browser (naturalWidth > 0)
    figures = dict(re.findall(r'"(results/report/[^"]+\.png)": \{.*?"data_uri": "(data:image/png;[^"]+)"', text, flags=re.S))
    assert {"results/report/pareto.png", "results/report/sensitivity.png", "results/report/layer_error.png"} <= set(figures), sorted(
        figures
    )
    assert "results/report/summary.csv" in text
    for name, uri in figures.items():
        page = tmp_path / "figure.html"
        page.write_text(
            f'<html><body><img id="f" src="{uri}"><script>window.onload = () => '
            "document.body.setAttribute('data-size', document.getElementById('f').naturalWidth + 'x' + "
            "document.getElementById('f').naturalHeight)</script></body></html>"
        )
        size = re.search(r'data-size="(\d+)x(\d+)"', _browser(chromium, "--dump-dom", page.as_uri()).stdout)
        assert size and int(size.group(1)) >= 300 and int(size.group(2)) >= 200, (name, size and size.group(0))
