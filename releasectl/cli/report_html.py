"""`releasectl report --html`: one self-contained HTML page that explains a release after the fact.

A timeline chart (inline SVG: no script, no network, no external asset) of the traffic samples the runner
kept in the release record (engine/samples.py): weight per version (achieved solid, requested dashed),
request rate, error rate and latency, with the pipeline's steps and the record's events marked on it, and
the verdict. Everything taken from the record is escaped, and every number is checked to be one: a record
is input like any other (a version string or a reason may hold markup).
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable

from releasectl.cli.render import utc
from releasectl.engine.model import Release, describe_step

WIDTH, LEFT, RIGHT = 1100, 64, 24
PANEL_HEIGHT, PANEL_TOP, PANEL_BOTTOM = 150, 26, 8
EVENT_STRIP = 34
COLOURS = ("#1f6fd1", "#e8590c", "#2b8a3e", "#862e9c", "#5c5f66", "#c2255c")
VERDICT_COLOURS = {"succeeded": "#2b8a3e", "failed": "#c92a2a", "aborted": "#e8590c"}
PANELS = (
    ("weight", "Traffic share per version (%) - achieved solid, requested dashed", "%"),
    ("rps", "Request rate per version (requests/s)", "/s"),
    ("errors", "Error rate per version (%)", "%"),
    ("latency", "Latency per version (ms) - p95 solid, LB average dashed", "ms"),
)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any) -> float | None:
    """A finite number from the record, or None (a damaged or hostile record holds anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _samples(rel: Release) -> list[dict[str, Any]]:
    good = []
    for sample in rel.samples if isinstance(rel.samples, list) else []:
        if isinstance(sample, dict) and num(sample.get("at")) is not None and isinstance(sample.get("versions"), dict):
            good.append(sample)
    return sorted(good, key=lambda s: s["at"])


def series(samples: list[dict[str, Any]], version: str, key: str, scale: float = 1.0) -> list[tuple[float, float]]:
    points = []
    for sample in samples:
        figures = sample["versions"].get(version)
        value = num(figures.get(key)) if isinstance(figures, dict) else None
        if value is not None:
            points.append((float(sample["at"]), value * scale))
    return points


def versions_of(rel: Release, samples: list[dict[str, Any]]) -> list[str]:
    """The release's two versions first (previous, then new), then any other version the pool served."""
    found: list[str] = [v for v in (rel.previous_version, rel.version) if isinstance(v, str) and v]
    for sample in samples:
        found += [v for v in sample["versions"] if isinstance(v, str) and v not in found]
    return found[: len(COLOURS)]


def steps_of(rel: Release, samples: list[dict[str, Any]]) -> list[tuple[float, str]]:
    """(time, label) where each step began, from the samples' step index, plus the rollback's start."""
    marks: list[tuple[float, str]] = []
    last: tuple[Any, Any] | None = None
    steps = rel.pipeline.steps
    for sample in samples:
        key = (sample.get("step"), sample.get("phase"))
        if key == last:
            continue
        last = key
        index, phase = key
        if phase == "rolling_back":
            label = "rollback"
        elif isinstance(index, int) and 0 <= index < len(steps):
            label = f"{index + 1}. {describe_step(steps[index])}"
        elif isinstance(index, int) and index >= len(steps):
            label = "finalize"
        else:
            continue
        if not marks or marks[-1][1] != label:
            marks.append((float(sample["at"]), label))
    return marks


class Axis:
    def __init__(self, t0: float, t1: float) -> None:
        self.t0, self.t1 = t0, max(t1, t0 + 1e-3)

    def x(self, t: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (min(max(t, self.t0), self.t1) - self.t0) / (self.t1 - self.t0)


def _ticks(high: float) -> list[float]:
    if high <= 0:
        return [0.0]
    step = 10 ** math.floor(math.log10(high))
    for factor in (1, 2, 5, 10):
        if high / (step * factor) <= 5:
            step *= factor
            break
    ticks, value = [], 0.0
    while value <= high * 1.0001:
        ticks.append(value)
        value += step
    return ticks


def panel(metric: str, title: str, unit: str, lines: list[dict[str, Any]], axis: Axis, marks: list[tuple[float, str]]) -> str:
    """One chart: axes, gridlines, step marks and a polyline (and dots) per series."""
    values = [v for line in lines for _, v in line["points"]]
    high = 100.0 if metric == "weight" else max(values, default=0.0) * 1.1
    if high <= 0:
        high = 1.0
    ticks = _ticks(high)
    high = max(high, ticks[-1])
    top, bottom = PANEL_TOP, PANEL_TOP + PANEL_HEIGHT

    def y(value: float) -> float:
        return bottom - PANEL_HEIGHT * min(max(value, 0.0), high) / high

    out = [f'<svg class="panel" data-metric="{metric}" width="{WIDTH}" height="{bottom + PANEL_BOTTOM + 16}" '
           f'viewBox="0 0 {WIDTH} {bottom + PANEL_BOTTOM + 16}" xmlns="http://www.w3.org/2000/svg" role="img">',
           f'<text x="{LEFT}" y="16" class="title">{esc(title)}</text>',
           f'<rect x="{LEFT}" y="{top}" width="{WIDTH - LEFT - RIGHT}" height="{PANEL_HEIGHT}" class="plot"/>']
    for tick in ticks:
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" class="tick" text-anchor="end">{tick:g}{esc(unit)}</text>')
    for t, label in marks:
        x = axis.x(t)
        cls = "mark rollback" if label == "rollback" else "mark"
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" class="{cls}"><title>{esc(label)}</title></line>')
    for line in lines:
        if not line["points"]:
            continue
        points = " ".join(f"{axis.x(t):.1f},{y(v):.1f}" for t, v in line["points"])
        dash = ' stroke-dasharray="6 4"' if line["dashed"] else ""
        out.append(
            f'<polyline class="series" data-metric="{metric}" data-kind="{line["kind"]}" data-version="{esc(line["version"])}" '
            f'points="{points}" fill="none" stroke="{line["colour"]}" stroke-width="2.5"{dash}>'
            f'<title>{esc(line["version"])} {esc(line["kind"])}</title></polyline>'
        )
        if not line["dashed"] and len(line["points"]) <= 200:
            out += [f'<circle cx="{axis.x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{line["colour"]}"/>' for t, v in line["points"]]
    out.append(f'<text x="{LEFT}" y="{bottom + 18}" class="tick">+0s</text>')
    out.append(f'<text x="{WIDTH - RIGHT}" y="{bottom + 18}" class="tick" text-anchor="end">+{axis.t1 - axis.t0:.1f}s</text>')
    out.append("</svg>")
    return "\n".join(out)


def event_strip(events: list[tuple[float, str]], marks: list[tuple[float, str]], axis: Axis) -> str:
    """Numbered event markers over the time axis (their text is in the list under the chart) and step labels."""
    out = [f'<svg class="events" width="{WIDTH}" height="{EVENT_STRIP + 28}" viewBox="0 0 {WIDTH} {EVENT_STRIP + 28}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img">']
    for i, (t, label) in enumerate(marks):
        x = axis.x(t)
        cls = "steplabel rollback" if label == "rollback" else "steplabel"
        out.append(f'<text x="{x + 3:.1f}" y="{12 + 12 * (i % 2)}" class="{cls}">{esc(label)}</text>')
    row_ends = [-1e9, -1e9]  # markers closer than their width go to the other row, not on top of each other
    for i, (t, message) in enumerate(events, 1):
        x = axis.x(t)
        row = 0 if x - row_ends[0] >= 18 or x - row_ends[1] < 18 else 1
        row_ends[row] = x
        y = EVENT_STRIP + 14 - 18 * row
        cls = "event rollback" if message.startswith("rolling back") else "event"
        out.append(f'<g class="{cls}" data-event="{i}"><circle cx="{x:.1f}" cy="{y}" r="8"/>'
                   f'<text x="{x:.1f}" y="{y + 4}" text-anchor="middle">{i}</text>'
                   f'<title>{esc(message)}</title></g>')
    out.append("</svg>")
    return "\n".join(out)


def _events(rel: Release) -> list[tuple[float, str]]:
    found = []
    for event in rel.events if isinstance(rel.events, list) else []:
        if isinstance(event, dict) and num(event.get("at")) is not None:
            found.append((float(event["at"]), str(event.get("message", ""))[:2000]))
    return sorted(found, key=lambda e: e[0])


def _sources(samples: list[dict[str, Any]]) -> dict[str, str]:
    """Where each chart's figures came from, as the samples say (engine/samples.py)."""
    seen: dict[str, list[str]] = {"traffic share": ["pool weights"], "latency": ["p95: releasectl probes", "average: load balancer"]}

    def note(key: str, value: Any) -> None:
        if isinstance(value, str) and value not in seen.setdefault(key, []):
            seen[key].append(value)

    for sample in samples:
        note("request and error rates", sample.get("traffic"))
        for figures in sample["versions"].values():
            if isinstance(figures, dict):
                note("error rate without LB counters", figures.get("err_src"))
    return {k: ", ".join(v) for k, v in seen.items()}


def render_html(rel: Release) -> str:
    samples = _samples(rel)
    events = _events(rel)
    times = [float(s["at"]) for s in samples] + [t for t, _ in events]
    start = num(rel.started_at) or min(times, default=0.0)
    end = num(rel.ended_at) or max(times + [num(rel.updated_at) or start])
    axis = Axis(min([start] + times), max([end] + times))
    versions = versions_of(rel, samples)
    marks = steps_of(rel, samples)

    def lines_for(metric: str) -> list[dict[str, Any]]:
        lines = []
        for i, version in enumerate(versions):
            colour = COLOURS[i % len(COLOURS)]

            def line(kind: str, key: str, dashed: bool, scale: float = 1.0) -> dict[str, Any]:
                return {"version": version, "kind": kind, "colour": colour, "dashed": dashed,
                        "points": series(samples, version, key, scale)}

            if metric == "weight":
                lines += [line("achieved", "ach", False), line("requested", "req", True)]
            elif metric == "rps":
                lines.append(line("rps", "rps", False))
            elif metric == "errors":
                lines.append(line("error_rate", "err", False, 100.0))
            else:
                lines += [line("p95", "p95", False), line("avg", "avg", True)]
        return lines

    phase = rel.phase.value
    verdict_colour = VERDICT_COLOURS.get(phase, "#5c5f66")
    verdict = rel.failure if phase in ("failed", "aborted") and rel.failure else rel.reason
    sources = _sources(samples)
    legend = "".join(
        f'<span class="key"><span class="swatch" style="background:{COLOURS[i % len(COLOURS)]}"></span>'
        f'<span class="version">{esc(v)}</span>{" (new)" if v == rel.version else " (previous)" if v == rel.previous_version else ""}</span>'
        for i, v in enumerate(versions)
    )
    charts = "\n".join(panel(metric, title, unit, lines_for(metric), axis, marks) for metric, title, unit in PANELS)
    rows = "\n".join(
        f'<tr><td class="n">{i}</td><td>+{t - axis.t0:.1f}s</td><td>{esc(utc(t))}</td><td>{esc(message)}</td></tr>'
        for i, (t, message) in enumerate(events, 1)
    )
    steps = "\n".join(f"<li>{esc(describe_step(s))}</li>" for s in rel.pipeline.steps)
    source_rows = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in sorted(sources.items()))
    title = f"{rel.kind.value} of {rel.app} {rel.version} to {rel.env}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{esc(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #212529; background: #fff; }}
h1 {{ font-size: 20px; margin: 0 0 8px; }}
.verdict {{ display: inline-block; padding: 6px 12px; border-radius: 4px; color: #fff; font-weight: 600; }}
.meta td {{ padding: 1px 12px 1px 0; }} .meta td:first-child {{ color: #5c5f66; }}
.key {{ margin-right: 18px; }} .swatch {{ display: inline-block; width: 22px; height: 6px; margin-right: 6px; vertical-align: middle; }}
svg {{ display: block; }} .title {{ font-weight: 600; font-size: 13px; }} .tick {{ font-size: 11px; fill: #5c5f66; }}
.plot {{ fill: #f8f9fa; stroke: #ced4da; }} .grid {{ stroke: #e9ecef; }}
.mark {{ stroke: #868e96; stroke-dasharray: 3 3; }} .mark.rollback {{ stroke: #c92a2a; stroke-width: 2; stroke-dasharray: none; }}
.steplabel {{ font-size: 11px; fill: #495057; }} .steplabel.rollback {{ fill: #c92a2a; font-weight: 600; }}
.event circle {{ fill: #495057; }} .event.rollback circle {{ fill: #c92a2a; }} .event text {{ fill: #fff; font-size: 10px; }}
table.events {{ border-collapse: collapse; margin-top: 8px; }} table.events td {{ padding: 2px 10px 2px 0; vertical-align: top; }}
td.n {{ font-weight: 600; }} .note {{ color: #5c5f66; }}
</style></head>
<body>
<h1>{esc(title)}</h1>
<p><span class="verdict" data-phase="{esc(phase)}" style="background:{verdict_colour}">{esc(phase)}</span>
<span class="reason">{esc(verdict)}</span></p>
<table class="meta">
<tr><td>release</td><td>{esc(rel.id)}</td></tr>
<tr><td>versions</td><td>{esc(rel.previous_version or "none (first release)")} &rarr; {esc(rel.version)}</td></tr>
<tr><td>pipeline</td><td>{esc(rel.pipeline.name)}</td></tr>
<tr><td>started</td><td>{esc(utc(num(rel.started_at)))}</td></tr>
<tr><td>ended</td><td>{esc(utc(num(rel.ended_at)))}</td></tr>
<tr><td>run by</td><td>{esc(rel.actor.get("user", "?") if isinstance(rel.actor, dict) else "?")}@{esc(rel.actor.get("host", "?") if isinstance(rel.actor, dict) else "?")}</td></tr>
<tr><td>samples</td><td>{len(samples)}</td></tr>
</table>
<p class="legend">{legend}</p>
{event_strip(events, marks, axis)}
{charts}
<p class="note">Figures are labelled by source. Sources seen:</p>
<ul class="sources">{source_rows if samples else "<li>no samples in this record (it predates them, or the release never polled)</li>"}</ul>
<h2>Steps</h2>
<ol class="steps">{steps}</ol>
<h2>Events</h2>
<table class="events">{rows}</table>
</body></html>
"""


def chart_summary(rel: Release) -> dict[str, Any]:
    """What the page charts, for `--output json` (counts, not the figures themselves)."""
    samples = _samples(rel)
    return {"samples": len(samples), "events": len(_events(rel)), "versions": versions_of(rel, samples),
            "steps": [label for _, label in steps_of(rel, samples)]}


__all__: Iterable[str] = ("render_html", "chart_summary")
