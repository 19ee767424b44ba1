"""The timeline of a release read back from the events its record keeps (`releasectl history show`). Apart from
engine/events.py (which re-exports it) so that `status`, which never reads one back, does not create its
dataclass nor compile its patterns (issue 12)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from releasectl.engine.events import who


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a release's story, read back from its record."""

    at: float
    event: str  # started, weights, step, analysis, intent, operator, rollback, ended
    message: str
    step: int | None = None  # 1-based step it concerns
    weight: dict[str, float] | None = None  # {"requested": %, "achieved": %} of the new version
    analysis: dict[str, Any] | None = None  # error rates, requests, source, p95 of an analysis verdict
    by: str | None = None  # user@host of who acted (the runner, or the operator of an intent)


# The forms the engine writes into the record (engine/transition.py, engine/decide.py, engine/intents.py);
# tests/unit/test_history_show.py builds them with the engine's own code, so a change of wording shows. An
# analysis verdict's figures are data on its event (`analysis`), never read from the words.
_STEP_DONE = re.compile(r"^step (?P<step>\d+) done: (?P<reason>.*)$", re.S)
_WEIGHTS = re.compile(r"^weights (?P<requested>[\d.]+)% requested, (?P<achieved>[\d.]+)% achieved")


def _analysis(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """The figures an event carries (engine/transition.py); None on other events and in older records."""
    figures = raw.get("analysis")
    return dict(figures) if isinstance(figures, Mapping) else None


def timeline(rel: Any) -> list[TimelineEntry]:
    """A release's story from its record (engine/model.py `Release`): its start (who ran it), every event it
    recorded, and its end. Step numbers come from the record's words; weights of a step from its pipeline."""
    steps = rel.pipeline.steps
    runner = who(rel.actor) if rel.actor else None
    entries = [TimelineEntry(
        at=rel.started_at, event="started", by=runner,
        message=f"{rel.kind.value} of {rel.app} {rel.version} to {rel.env} from {rel.previous_version or 'none'} "
                f"with pipeline {rel.pipeline.name} ({len(steps)} steps)",
    )]
    step_now = 1
    for raw in rel.events:
        message = str(raw.get("message", ""))
        at = float(raw.get("at") or rel.started_at)
        if raw.get("intent"):
            entries.append(TimelineEntry(at, "intent", message, step_now, by=raw.get("by") or _intent_actor(message)))
            continue
        if raw.get("by"):
            entries.append(TimelineEntry(at, "operator", message, step_now, by=str(raw["by"])))
            continue
        weights = _WEIGHTS.match(message)
        if weights:
            weight = {"requested": float(weights["requested"]), "achieved": float(weights["achieved"])}
            entries.append(TimelineEntry(at, "weights", message, step_now, weight=weight, by=runner))
            continue
        done = _STEP_DONE.match(message)
        if done:
            step_now = int(done["step"])
            figures = _analysis(raw)
            percent = getattr(steps[step_now - 1], "percent", None) if 0 < step_now <= len(steps) else None
            weight = None if percent is None else {"requested": float(percent)}
            entries.append(TimelineEntry(at, "analysis" if figures else "step", message, step_now, weight, figures, runner))
            step_now = min(step_now + 1, len(steps))
            continue
        kind = "rollback" if message.startswith("rolling back:") else "event"
        entries.append(TimelineEntry(at, kind, message, step_now, analysis=_analysis(raw), by=runner))
    if rel.ended_at is not None:
        why = rel.failure or rel.reason
        entries.append(TimelineEntry(rel.ended_at, "ended", f"{rel.phase.value}" + (f": {why}" if why else ""),
                                     min(step_now, len(steps)), by=runner))
    return sorted(entries, key=lambda e: e.at)


def _intent_actor(message: str) -> str | None:
    """engine/intents.py words its verdicts `user@host promoted ...` or `ignored user@host's ...`."""
    match = re.match(r"^(?:ignored )?(?P<who>\S+@[^\s']+)", message)
    return match["who"] if match else None
