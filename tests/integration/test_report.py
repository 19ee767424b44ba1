"""`releasectl report --html` after a canary that rolled back on its own, rendered in headless Chromium; and
a first release with the built-in canary, which skips its weight and analysis steps.

The screenshot is kept under the test's tmp dir and in `test-artifacts/` (gitignored; CI keeps it). Without
Chromium the report test skips, unless RELEASECTL_REQUIRE_CHROMIUM=1 (CI) makes that a failure."""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from releasectl.engine import records
from releasectl.loadgen import LoadGenerator
from tests.helpers import png_pixels

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NEW_COLOUR, OLD_COLOUR = (0xE8, 0x59, 0x0C), (0x1F, 0x6F, 0xD1)  # the page's colours of the new and previous versions
REPORT_CANARY = """\
name: report-canary
steps:
  - launch: {}
  - weight: {percent: 20, hold: 1s}
  - analyze: {duration: 2s, max_error_rate: 1%, min_requests: 20}
  - weight: {percent: 100}
  - retire: {drain_timeout: 1s}
"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "headless Chromium is not installed (Debian: apt-get install chromium)"
    if os.environ.get("RELEASECTL_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"RELEASECTL_REQUIRE_CHROMIUM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def screenshot(browser: str, page: Path, png: Path, profile: Path) -> None:
    """One screenshot by a headless Chromium of its own (own profile folder, own process group)."""
    proc = subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1200,1500", page.as_uri()],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("chromium took more than 90 s to take a screenshot")
    assert png.exists(), f"chromium wrote no screenshot (exit {proc.returncode}): {err.decode(errors='replace')[-2000:]}"


class Chart(HTMLParser):
    """The page's SVG elements, by tag: polylines with their data attributes, scripts, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.polylines: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "polyline":
            self.polylines.append(attrs)
        for key in ("src", "href", "xlink:href"):
            if key in attrs:
                self.external.append(attrs[key])


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def broken_app(ws) -> str:
    """Make the builder's app answer 500 on / (its health check still passes), so only an analysis under
    load can catch it. Returns the original source to put back."""
    app = ws.path / "app" / "app.py"
    original = app.read_text()
    patched = original.replace('status, text = 200, f"{VERSION}\\n"', 'status, text = 500, "broken\\n"')
    assert patched != original, "the sample app changed: update broken_app()"
    app.write_text(patched)
    return original


def test_first_release_with_the_builtin_canary_skips_weights_and_analyses(workspace):
    ws = workspace
    ws.bake("1.0.0")
    started = time.monotonic()
    result = ws.cli("rollout", "1.0.0", "--pipeline", "canary", "--output", "json")
    elapsed = time.monotonic() - started
    assert result.code == 0, result.stderr[-3000:]
    rel = records.load_current(ws.provider())
    assert rel.phase.value == "succeeded" and rel.pipeline.name == "canary"
    skipped = [e for e in rel.events if "skipped" in e["message"]]
    assert len(skipped) == 4, rel.events  # 10 %, analysis, 50 %, analysis
    # no sample ever shows the new version at a share between 0 and 100 %: there was no split to make
    shares = {s["versions"]["1.0.0"]["ach"] for s in rel.samples if "1.0.0" in s["versions"]}
    assert shares <= {0.0, 100.0}, shares
    assert elapsed < 10, f"a first release with the built-in canary took {elapsed:.1f}s"


def test_report_of_a_canary_rolled_back_renders_in_chromium(workspace, tmp_path):
    browser = chromium()
    ws = workspace
    (ws.path / "report-canary.yaml").write_text(REPORT_CANARY)
    ws.bake("1.0.0")
    ws.ok("rollout", "1.0.0", "--pipeline", "first-fast.yaml")
    original = broken_app(ws)
    try:
        ws.ok("bake", "1.1.0")
    finally:
        (ws.path / "app" / "app.py").write_text(original)
    with LoadGenerator(ws.url, duration=60, max_requests=50_000, keepalive_clients=2, new_connection_clients=0, timeout=3):
        result = ws.cli("rollout", "1.1.0", "--pipeline", "report-canary.yaml", "--output", "json")
    assert result.code == 1, result.stderr[-3000:]  # the analysis caught the 500s and rolled back
    rel = records.load_current(ws.provider())
    assert rel.phase.value == "failed" and "analysis failed" in (rel.failure or "")
    release = result.json()["release"]  # the verdict's figures and worst member, as data (HAProxy counters)
    figures = release["analysis"]
    assert figures["result"] == "failed" and figures["source"] == "load balancer stats"
    assert figures["new_error_rate_pct"] > figures["max_error_rate_pct"] and figures["errors"] > 0
    assert release["failing_member"] == figures["failing_member"]["name"] and release["failing_member"].startswith("shop-1.1.0-")

    page = tmp_path / "report.html"
    made = ws.cli("report", "latest", "--html", str(page), "--output", "json")
    assert made.code == 0, made.stderr
    summary = made.json()["report"]
    assert summary["release_id"] == rel.id and summary["samples"] == len(rel.samples) > 5
    assert summary["versions"] == ["1.0.0", "1.1.0"] and summary["steps"][-1] == "rollback"

    chart = Chart()
    chart.feed(page.read_text())
    assert "script" not in chart.tags and chart.external == []  # self-contained: nothing to fetch, nothing to run
    lines = {(p["data-metric"], p["data-kind"], p["data-version"]): p["points"].split() for p in chart.polylines}
    for version in ("1.0.0", "1.1.0"):
        assert len(lines[("weight", "achieved", version)]) > 5, lines.keys()
        assert lines[("weight", "requested", version)]
        assert lines[("errors", "error_rate", version)]
        assert lines[("rps", "rps", version)]

    png = tmp_path / "report.png"
    screenshot(browser, page, png, tmp_path / "chromium-profile")
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(png, ARTIFACTS / "report-canary-rolled-back.png")
    shutil.copy(page, ARTIFACTS / "report-canary-rolled-back.html")
    width, height, channels, pixels = png_pixels(png.read_bytes())
    assert (width, height) == (1200, 1500)
    assert statistics.pvariance(pixels[::101]) > 100, "the screenshot is blank"
    rgb = [tuple(pixels[i:i + 3]) for i in range(0, len(pixels), channels * 7)]
    assert sum(near(p, NEW_COLOUR) for p in rgb) > 100, "no curve of the new version is visible"
    assert sum(near(p, OLD_COLOUR) for p in rgb) > 100, "no curve of the previous version is visible"
