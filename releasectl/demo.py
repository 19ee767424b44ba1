"""`releasectl demo`: a whole release story on the local provider, under load, in well under a minute.

In a folder of its own it sets up the sample app, then calls the engine exactly as the CLI does:

1. init (fast health checks, a fast canary pipeline written into the folder), bake 1.0.0 and roll it out;
2. bake 1.1.0 and roll it out with the canary pipeline while the built-in load generator sends traffic
   through the load balancer;
3. bake a broken 1.2.0 (its /healthz answers 500) and roll it out: the engine rolls it back by itself;
4. roll back by hand to 1.0.0. The canary's retire step kept the 1.0.0 fleet warm, so this rollback adopts
   it at once instead of relaunching it from its image.

Load runs through steps 2 to 4 (one bounded generator per step). Every request the clients send is counted,
so the summary shows what "zero downtime" means in numbers. Unless `keep`, everything it started is stopped
at the end, also after an error.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import yaml

from releasectl.cli.render import table
from releasectl.cli.runtime import Globals, engine_context, settings
from releasectl.cli.scaffold import scaffold
from releasectl.config import CONFIG_NAME, load_pipeline
from releasectl.engine import records
from releasectl.engine.context import EngineContext
from releasectl.engine.events import Event, EventSink
from releasectl.engine.images import bake
from releasectl.engine.model import Release
from releasectl.engine.observe import live_version, observe
from releasectl.engine.release import abort, down, rollback, rollout
from releasectl.errors import ReleaseFailed, ReleasectlError, UsageError
from releasectl.loadgen import LoadGenerator, LoadStats
from releasectl.providers.base import Role, ServerStatus

APP = "demo"
LOAD_SECONDS = 20.0  # upper bound of each step's load
LOAD_MAX_REQUESTS = 200_000  # upper bound of each step's load
BASELINE_SECONDS = 1.5  # load before each step starts, so the step begins under load
KEEP_WARM = "10m"

FIRST_PIPELINE = """\
# The demo's first release: nothing to shift from, so all traffic at once.
name: demo-first
description: Launch the first fleet and send it all traffic.
steps:
  - launch: {}
  - weight: {percent: 100, hold: 1s}
  - retire: {drain_timeout: 5s}
"""

CANARY_PIPELINE = f"""\
# The demo's canary: the built-in canary's shape with holds of a few seconds. The retire step keeps the
# previous fleet warm (weight 0) for {KEEP_WARM}, so `releasectl rollback` can switch back to it at once.
name: demo-canary
description: 10 % then 50 % of traffic with short holds and an error-rate check, then all of it; keep the old fleet warm.
steps:
  - launch: {{}}
  - weight: {{percent: 10, hold: 3s}}
  - analyze: {{duration: 2s, max_error_rate: 1%}}
  - weight: {{percent: 50, hold: 3s}}
  - weight: {{percent: 100, hold: 2s}}
  - retire: {{drain_timeout: 5s, keep_previous: {KEEP_WARM}}}
"""


def _say(emit: EventSink, message: str, **data: Any) -> None:
    emit(Event(kind="demo", message=message, data=data))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class Demo:
    def __init__(self, directory: Path, port: int, emit: EventSink) -> None:
        self.directory = directory
        self.port = port
        self.emit = emit
        self.config = directory / CONFIG_NAME
        self.endpoint = f"http://127.0.0.1:{port}/"
        self.phases: list[dict[str, Any]] = []
        self.ctx: EngineContext | None = None
        self.rollback_path: str | None = None
        self.rollback_note = ""

    # ---- set-up -------------------------------------------------------------------------------------

    def init(self) -> None:
        if self.config.exists():
            raise UsageError(
                f"{self.config} already exists: the demo needs a folder of its own",
                hint="give a new or empty folder, or leave the argument out for a temporary one",
            )
        scaffold(self.directory, provider="local", app=APP, cloud=None, port=self.port, force=False)
        data = yaml.safe_load(self.config.read_text())
        data["health"].update({"interval": "500ms", "timeout": "1s", "rise": 2, "fall": 2})
        data["rollout"].update({"pipeline": "demo-canary.yaml", "progress_deadline": "60s"})
        (self.directory / "demo-first.yaml").write_text(FIRST_PIPELINE)
        (self.directory / "demo-canary.yaml").write_text(CANARY_PIPELINE)
        header = "# releasectl.yaml written by `releasectl demo`: the sample app with fast health checks.\n"
        self.config.write_text(header + yaml.safe_dump(data, sort_keys=False))
        self.ctx = self.context()
        _say(self.emit, f"set up the sample app in {self.directory} (load balancer {self.endpoint})")

    def context(self) -> EngineContext:
        """What the CLI builds for a command, with the demo's progress sink."""
        g = Globals(config=self.config)
        return replace(engine_context(g, settings(g)), emit=self.emit)

    def bake(self, version: str, *, broken: bool = False) -> None:
        assert self.ctx is not None
        flag = self.directory / "app" / "FAIL_HEALTH"
        if broken:
            _say(self.emit, f"baking a broken {version}: its /healthz answers 500 (app/FAIL_HEALTH is in the image)")
            flag.touch()
        try:
            bake(self.ctx, version)
        finally:
            flag.unlink(missing_ok=True)

    # ---- phases -------------------------------------------------------------------------------------

    def phase(self, name: str, version: str, action: Callable[[], Release], *, load: bool) -> dict[str, Any]:
        """Run one engine call (under load if asked) and record what happened and what clients saw."""
        assert self.ctx is not None
        self.ctx.stop.check()
        generator = None
        if load:
            generator = LoadGenerator(self.endpoint, duration=LOAD_SECONDS, max_requests=LOAD_MAX_REQUESTS)
            generator.start()
            _say(self.emit, f"load: {generator.clients} clients (keep-alive and new-connection) -> {self.endpoint}")
            self.ctx.clock.sleep(BASELINE_SECONDS)
        began = time.time()
        record: dict[str, Any] = {"phase": name, "version": version, "rolled_back": False, "error": None}
        try:
            release = action()
            record.update(outcome=release.phase.value, reason=release.reason)
        except ReleaseFailed as exc:
            current = records.load_current(self.ctx.provider)
            record.update(
                outcome=current.phase.value if current is not None else "failed",
                rolled_back=True,
                reason=exc.message,
                error=exc.message,
                traffic_back_on=current.previous_version if current is not None else None,
            )
            _say(self.emit, f"{version} failed and the engine rolled it back by itself: {exc.message}")
        finally:
            ended = time.time()
            if generator is not None:
                generator.stop()
                generator.join()
            record["duration_s"] = round(ended - began, 2)
            record.update(self._load_figures(generator, began, ended))
            self.phases.append(record)
        current = records.load_current(self.ctx.provider)
        if current is not None:
            record["release_id"] = current.id
            record["pipeline"] = current.pipeline.name
            record["previous_version"] = current.previous_version
        if generator is not None:
            seen = ", ".join(f"{body} x{n}" for body, n in record["versions_seen"].items()) or "none"
            _say(
                self.emit,
                f"load during {name}: {record['requests']} requests, {record['failed']} failed, "
                f"p50 {_ms(record['p50_ms'])} ms, p99 {_ms(record['p99_ms'])} ms; versions seen: {seen}",
            )
        return record

    @staticmethod
    def _load_figures(generator: LoadGenerator | None, began: float, ended: float) -> dict[str, Any]:
        if generator is None:
            return {
                "requests": 0, "failed": 0, "non_2xx": 0, "connection_errors": 0,
                "p50_ms": None, "p99_ms": None, "versions_seen": {}, "load": None,
            }
        whole: LoadStats = generator.snapshot()
        baseline = generator.stats(until=began)
        during = generator.stats(since=began)
        return {
            "requests": whole.requests,
            "failed": whole.failed,
            "non_2xx": whole.non_2xx,
            "connection_errors": whole.connection_errors,
            "p50_ms": _round(whole.p50_ms),
            "p99_ms": _round(whole.p99_ms),
            "versions_seen": dict(whole.by_body),
            "load": {
                "whole": whole.to_dict(),
                "before": baseline.to_dict(),
                "during": during.to_dict(),
            },
        }

    def choose_rollback_path(self, version: str) -> None:
        """Which way the engine's rollback will go: the warm fleet, or a relaunch from the image."""
        assert self.ctx is not None
        observed = observe(self.ctx.provider)
        warm = [
            s for s in observed.with_role(Role.PREVIOUS) if s.version == version and s.status is ServerStatus.ACTIVE
        ]
        if warm:
            self.rollback_path = "warm"
            self.rollback_note = (
                f"warm: the canary's retire step kept {len(warm)} {version} server(s) warm (keep_previous "
                f"{KEEP_WARM}), so the rollback adopted them instead of relaunching"
            )
        else:
            self.rollback_path = "relaunch"
            self.rollback_note = (
                f"relaunch: no warm {version} server was left (the canary's retire step asked to keep them for "
                f"{KEEP_WARM}), so the rollback relaunched {version} from its image"
            )
        _say(self.emit, f"rollback path: {self.rollback_note}")

    def run(self) -> None:
        ctx = self.ctx
        assert ctx is not None
        first = load_pipeline(str(self.directory / "demo-first.yaml"))
        canary = load_pipeline(str(self.directory / "demo-canary.yaml"))

        _say(self.emit, "step 1/4: bake 1.0.0 and roll it out")
        self.bake("1.0.0")
        self.phase(
            "first release", "1.0.0",
            lambda: rollout(replace(ctx, pipeline_name=first.name), "1.0.0", first), load=False,
        )

        _say(self.emit, "step 2/4: bake 1.1.0 and roll it out with a canary, under load")
        self.bake("1.1.0")
        self.phase(
            "canary", "1.1.0",
            lambda: rollout(replace(ctx, pipeline_name=canary.name), "1.1.0", canary), load=True,
        )

        _say(self.emit, "step 3/4: bake a broken 1.2.0 and roll it out, under load: expect an automatic rollback")
        self.bake("1.2.0", broken=True)
        self.phase(
            "broken release", "1.2.0",
            lambda: rollout(replace(ctx, pipeline_name=canary.name), "1.2.0", canary), load=True,
        )

        _say(self.emit, "step 4/4: roll back by hand to 1.0.0, under load")
        self.choose_rollback_path("1.0.0")
        self.phase("manual rollback", "1.0.0", lambda: rollback(ctx, to="1.0.0"), load=True)

    # ---- tear-down ----------------------------------------------------------------------------------

    def live(self) -> str | None:
        if self.ctx is None:
            return None
        try:
            return live_version(observe(self.ctx.provider))
        except ReleasectlError:
            return None

    def teardown(self) -> list[str]:
        """Stop every server and the load balancer, with a fresh context (a Ctrl-C may have set the old one's
        stop token). An unfinished release is aborted first; as a last resort the provider stops things."""
        if not self.config.exists():
            return []
        _say(self.emit, "stopping the demo's servers and load balancer")
        ctx = self.context()
        try:
            try:
                return down(ctx)
            except UsageError as exc:  # a release is unfinished (an interrupted step)
                _say(self.emit, f"cannot stop yet ({exc.message}): aborting the unfinished release first")
                abort(ctx)
                return down(ctx)
        except Exception as exc:  # noqa: BLE001 - clean up whatever happened
            _say(self.emit, f"stopping through the engine failed ({exc}); stopping the processes directly")
            stopped = []
            for server in ctx.provider.list_servers():
                ctx.provider.delete_server(server.id)
                stopped.append(server.name)
            ctx.provider.destroy_pool()
            return stopped
        finally:
            ctx.provider.close()

    # ---- summary ------------------------------------------------------------------------------------

    def summary(self, *, keep: bool, stopped: list[str] | None, live: str | None, seconds: float) -> dict[str, Any]:
        loaded = [p for p in self.phases if p["load"] is not None]
        totals = {
            "requests": sum(p["requests"] for p in loaded),
            "failed": sum(p["failed"] for p in loaded),
            "non_2xx": sum(p["non_2xx"] for p in loaded),
            "connection_errors": sum(p["connection_errors"] for p in loaded),
            "duration_s": round(seconds, 1),
        }
        rows = [
            {
                "phase": p["phase"],
                "version": p["version"],
                "outcome": p["outcome"] + (" (rolled back)" if p["rolled_back"] else ""),
                "duration": f"{p['duration_s']:.1f}s",
                "requests": str(p["requests"]) if p["load"] else "-",
                "failed": str(p["failed"]) if p["load"] else "-",
                "p50 ms": _ms(p["p50_ms"]),
                "p99 ms": _ms(p["p99_ms"]),
                "versions seen": ", ".join(p["versions_seen"]) or "-",
            }
            for p in self.phases
        ]
        rows.append({
            "phase": "total", "version": live or "-", "outcome": "", "duration": f"{seconds:.1f}s",
            "requests": str(totals["requests"]), "failed": str(totals["failed"]),
            "p50 ms": "", "p99 ms": "", "versions seen": "",
        })
        lines = [
            table(rows),
            "",
            f"failed requests (non-2xx or no answer) under load: {totals['failed']} of {totals['requests']}"
            + (" - zero downtime" if totals["failed"] == 0 and totals["requests"] else ""),
            f"live version now: {live or 'none'}",
        ]
        if self.rollback_note:
            lines.append(f"manual rollback path: {self.rollback_note}")
        lines.append(f"demo folder: {self.directory}")
        if keep:
            lines.append(f"kept running at {self.endpoint}: `cd {self.directory} && releasectl status`, then `releasectl down`")
        else:
            lines.append(f"stopped {len(stopped or [])} server(s) and the load balancer; `releasectl history` there shows the releases")
        return {
            "directory": str(self.directory),
            "app": APP,
            "endpoint": self.endpoint,
            "kept": keep,
            "live_version": live,
            "rollback_path": self.rollback_path,
            "rollback_note": self.rollback_note,
            "phases": self.phases,
            "totals": totals,
            "zero_downtime": totals["failed"] == 0 and totals["requests"] > 0,
            "stopped": stopped,
            "load_bounds": {"seconds": LOAD_SECONDS, "max_requests": LOAD_MAX_REQUESTS},
            "table": "\n".join(lines),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def run_demo(directory: Path | None, *, keep: bool, port: int, emit: EventSink) -> dict[str, Any]:
    """Run the demo in `directory` (a new temporary folder when None) and return its summary."""
    started = time.monotonic()
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="releasectl-demo-"))
    directory = Path(directory).resolve()
    demo = Demo(directory, port, emit)
    stopped: list[str] | None = None
    live: str | None = None
    completed = False
    try:
        demo.init()
        demo.run()
        live = demo.live()
        completed = True
    finally:
        if demo.ctx is not None:
            demo.ctx.provider.close()
        if not keep:
            stopped = demo.teardown()
        elif completed:
            _say(emit, f"leaving the demo running at {demo.endpoint} (--keep)")
    return demo.summary(keep=keep, stopped=stopped, live=live, seconds=time.monotonic() - started)
