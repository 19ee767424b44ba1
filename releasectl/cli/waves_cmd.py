"""`rollout`, `promote`, `status` and `history` of an environment with `regions:` (engine/waves.py).

Each region gets an ordinary engine context whose provider is bound to that region (config
`Settings.for_region`); the wave record and its lock live in the first region under their own scope.
`RELEASECTL_REGION=NAME` makes every command act on that one region alone, as a one-region environment.
"""

from __future__ import annotations

from typing import Any

from releasectl.cli.release_json import JSON_DATA
from releasectl.cli.render import Result, table
from releasectl.cli.runtime import Globals, engine_context
from releasectl.config import Settings
from releasectl.engine import waves
from releasectl.engine.model import Pipeline
from releasectl.errors import ReleasectlError


def wave_context(g: Globals, s: Settings, pipeline_name: str | None = None, *, writes: bool = True) -> waves.WaveContext:
    """The wave's context and a factory of per-region contexts sharing its stop token (one signal handler
    stops the whole wave at its next safe point). The regions' own releases notify only with
    `waves: {notify: regions}`; by default the wave sends one summary (engine/waves.py `_announce`)."""
    home = engine_context(g, s.for_region(s.regions[0].name, record_scope=waves.WAVES_SCOPE),
                          pipeline_name=pipeline_name, writes=writes)

    def region_ctx(name: str):
        return engine_context(g, s.for_region(name), pipeline_name=pipeline_name, writes=writes, stop=home.stop,
                              notify=s.waves.notify == "regions")

    return waves.WaveContext(home=home, region_ctx=region_ctx, regions=s.region_names(), gate=s.waves.gate,
                             hold=s.waves.hold, on_failure=s.waves.on_failure)


def _with_wave(w: waves.WaveContext, run: Any) -> Result:
    """Run a wave verb; an error carries `{"wave": ...}` (the record as it stands) into the JSON output."""
    try:
        wave = run()
    except ReleasectlError as exc:
        try:
            current = waves.load_wave(w.home)
        except ReleasectlError:
            current = None
        setattr(exc, JSON_DATA, {"wave": current.to_dict() if current else None})
        raise
    return wave_result(wave)


def rollout(g: Globals, s: Settings, pipeline: Pipeline, version: str | None, resume: bool) -> Result:
    w = wave_context(g, s, pipeline.name)
    return _with_wave(w, lambda: waves.rollout(w, version, pipeline, resume=resume))


def promote(g: Globals, s: Settings, full: bool) -> Result:
    w = wave_context(g, s)
    return _with_wave(w, lambda: waves.promote(w, full=full))


def abort(g: Globals, s: Settings, wait: float | None) -> Result:
    from releasectl.cli import views

    w = wave_context(g, s)
    result = waves.abort(w, wait=wait)
    return wave_result(result) if isinstance(result, waves.Wave) else views.release_or_intent_result(result)


def wave_result(wave: waves.Wave) -> Result:
    return Result(data={"wave": wave.to_dict()}, text=lambda: _wave_text(wave))


def _wave_text(wave: waves.Wave) -> str:
    head = f"wave rollout of {wave.app} {wave.version} in {wave.env}: {wave.phase.value}" + (f" ({wave.reason})" if wave.reason else "")
    rows = [{"region": r.region, "state": r.state.value, "release": r.release_id or "-", "from": r.previous_version or "-",
             "reason": r.reason[:60]} for r in wave.regions]
    return f"{head}\n{table(rows)}"


def status(g: Globals, s: Settings) -> Result:
    """Each region's status (as `status` shows one environment), and the wave in progress or last."""
    from releasectl.cli import views
    from releasectl.engine.status import status as do_status

    w = wave_context(g, s, writes=False)
    wave = waves.load_wave(w.home)
    regions, texts, code = [], [], 0
    for name in w.regions:
        result = views.status_result(do_status(w.region(name)))
        regions.append({"region": name, **result.data})
        texts.append(f"== region {name} ==\n{result.text() if result.text else ''}")
        code = max(code, result.exit_code)
    data = {"app": s.app, "environment": s.env, "wave": wave.to_dict() if wave else None, "regions": regions}

    def text() -> str:
        return "\n".join([_wave_text(wave) if wave else "wave: none", "", *texts])

    return Result(data=data, text=text, exit_code=code)


def history(g: Globals, s: Settings) -> Result:
    """The waves, newest first, and each region's releases."""
    from releasectl.cli import views
    from releasectl.engine.status import history as do_history

    w = wave_context(g, s, writes=False)
    wave_list = waves.wave_history(w.home)
    results = {name: views.history_result(do_history(w.region(name))) for name in w.regions}

    def text() -> str:
        rows = [{"wave": x.id, "version": x.version, "outcome": x.phase.value,
                 "regions": ", ".join(f"{r.region}:{r.state.value}" for r in x.regions), "reason": x.reason[:60]}
                for x in wave_list]
        return "\n".join([table(rows), "", *(f"== region {name} ==\n{r.text()}" for name, r in results.items())])

    return Result(data={"waves": [x.to_dict() for x in wave_list],
                        "regions": [{"region": name, **r.data} for name, r in results.items()]}, text=text)
