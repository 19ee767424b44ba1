"""The engine's domain: pipelines and their steps, and the durable release record.

Spec and status are separate, as in Argo Rollouts: a `Pipeline` is the plan, a `Release` is the progress
through it. The record holds only what cannot be observed (phase, step index, step start, intents,
deadlines); weights, health and fleets are derived from the provider each pass.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from releasectl.engine.failure import AnalysisResult, FailingMember

# ---- health views: what decide reads (here, not in health.py, so read-only commands that only show them do not
# create the tracker's classes nor import the load generator). A failure's figures are in engine/failure.py.


@dataclass(frozen=True)
class StreakView:
    """One server's probe streaks, frozen for `decide` (engine/health.py's tracker keeps the live ones)."""

    ok: int = 0
    bad: int = 0
    down: int = 0
    last: str = "not probed yet"
    lb_down: int = 0
    window_probes: int = 0
    window_failures: int = 0


@dataclass(frozen=True)
class HealthView:
    """A frozen copy of the tracker for `decide`: probes are I/O done by the runner; decide only reads this."""

    rise: int = 2
    fall: int = 2
    streaks: tuple[tuple[str, StreakView], ...] = ()
    latencies: tuple[float, ...] = ()
    probes: int = 0
    failures: int = 0
    sources: frozenset[str] = frozenset()

    def _streak(self, server_id: str) -> StreakView:
        return next((s for sid, s in self.streaks if sid == server_id), StreakView())

    def passing(self, server_id: str) -> bool:
        return self._streak(server_id).ok >= self.rise

    def answered(self, server_id: str) -> bool:
        """Our last probe of it passed (one, not `rise`: for a server the LB already vouches for)."""
        return self._streak(server_id).ok >= 1

    def failed_at_launch(self, server_id: str) -> bool:
        streak = self._streak(server_id)
        return max(streak.bad, streak.lb_down) >= self.fall

    def failed_in_service(self, server_id: str) -> bool:
        streak = self._streak(server_id)
        return max(streak.down, streak.lb_down) >= self.fall

    def describe(self, server_id: str) -> str:
        return self._streak(server_id).last

    def window(self, server_id: str) -> tuple[int, int]:
        """(failed, all) probes of the server since the analysis window opened."""
        streak = self._streak(server_id)
        return streak.window_failures, streak.window_probes


# ---- pipeline steps (a one-of, like Argo's CanaryStep) ------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """Boot the new fleet (or adopt a warm one of the same version) and gate it on health."""

    count: int | None = None  # None: the environment's instance count

    kind = "launch"


@dataclass(frozen=True)
class SetWeight:
    """Send `percent` of traffic to the new fleet, verify, then hold while watching health."""

    percent: float
    hold: float = 0.0  # seconds

    kind = "weight"


@dataclass(frozen=True)
class Pause:
    """A timed hold, or with no duration a manual gate that `releasectl promote` opens."""

    duration: float | None = None

    kind = "pause"


@dataclass(frozen=True)
class Analyze:
    """Compare the new members' error rate (and optionally p95 latency) with the old ones'."""

    duration: float
    max_error_rate: float  # fraction, 0.01 = 1 %
    max_p95_ms: float | None = None
    min_requests: int = 50  # fewer is inconclusive
    inconclusive: str = "extend"  # extend (until the progress deadline), fail or pass

    kind = "analyze"


@dataclass(frozen=True)
class Retire:
    """Drain and remove the old fleet, or keep it warm (weight 0) for `keep_previous` seconds."""

    drain_timeout: float = 30.0
    keep_previous: float = 0.0

    kind = "retire"


Step = Union[Launch, SetWeight, Pause, Analyze, Retire]
STEP_TYPES: dict[str, type] = {cls.kind: cls for cls in (Launch, SetWeight, Pause, Analyze, Retire)}


def step_to_dict(step: Step) -> dict[str, Any]:
    return {"kind": step.kind, **asdict(step)}


def step_from_dict(data: dict[str, Any]) -> Step:
    data = dict(data)
    cls = STEP_TYPES[data.pop("kind")]
    return cls(**data)


def describe_step(step: Step) -> str:
    if isinstance(step, Launch):
        return f"launch {step.count if step.count is not None else 'all'}"
    if isinstance(step, SetWeight):
        return f"weight {step.percent:g}%" + (f", hold {step.hold:g}s" if step.hold else "")
    if isinstance(step, Pause):
        return "pause (manual gate)" if step.duration is None else f"pause {step.duration:g}s"
    if isinstance(step, Analyze):
        return f"analyze {step.duration:g}s, max error rate {step.max_error_rate * 100:g}%" + (
            f", max p95 {step.max_p95_ms:g}ms" if step.max_p95_ms is not None else ""
        ) + f", min {step.min_requests} requests (else {step.inconclusive})"
    return f"retire (drain {step.drain_timeout:g}s, keep previous {step.keep_previous:g}s)"


@dataclass(frozen=True)
class Pipeline:
    """A release plan: its steps in order (a built-in pipeline, or a YAML file of the project's)."""

    name: str
    steps: tuple[Step, ...]
    description: str = ""
    source: str = ""  # file it came from, for messages

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "steps": [step_to_dict(s) for s in self.steps],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Pipeline":
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            source=data.get("source", ""),
            steps=tuple(step_from_dict(s) for s in data["steps"]),
        )

    @property
    def digest(self) -> str:
        """Changes when the steps change, so a resumed release can tell its plan was edited."""
        import hashlib  # here: `status` never digests a pipeline

        body = json.dumps([step_to_dict(s) for s in self.steps], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class SmokeCheck:
    """One `stage` check against the staging instance."""

    path: str
    expected_status: int = 200
    body_contains: str | None = None
    max_latency: float | None = None  # seconds


# ---- the release record -------------------------------------------------------------------------------


class Phase(str, enum.Enum):
    PROGRESSING = "progressing"
    PAUSED = "paused"  # at a manual gate
    ROLLING_BACK = "rolling_back"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed and rolled back automatically
    ABORTED = "aborted"  # rolled back by `abort`

    @property
    def finished(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.ABORTED)


class ReleaseKind(str, enum.Enum):
    ROLLOUT = "rollout"
    ROLLBACK = "rollback"


@dataclass
class Release:
    """Durable progress of one rollout or rollback. Written only by the lock holder."""

    id: str
    app: str
    env: str
    kind: ReleaseKind
    version: str  # the version being released
    image_id: str
    previous_version: str | None  # live version when it started (what a rollback restores)
    pipeline: Pipeline
    count: int  # instances of the new fleet
    phase: Phase = Phase.PROGRESSING
    step_index: int = 0
    step_started_at: float | None = None
    wake_at: float | None = None  # end of the current hold, pause, analysis or drain (a timestamp, not a sleep)
    started_at: float = 0.0
    updated_at: float = 0.0
    ended_at: float | None = None
    progress_deadline: float = 600.0  # seconds a step may take to make progress (holds excluded)
    actor: dict[str, str] = field(default_factory=dict)  # host, user, pid, ci_job
    reason: str = ""  # why it is in its phase (last decision)
    failure: str | None = None
    failing_member: FailingMember | None = None  # the server a failure names (None in older records)
    failure_analysis: AnalysisResult | None = None  # the figures of the analysis that failed it, if one did
    relaunches: int = 0  # broken new servers replaced during launch (bounded by count)
    rollback_outcome: str | None = None  # "failed" or "aborted": the phase a rollback in progress ends in
    promote_full: bool = False  # intent: skip remaining steps
    promoted_step: int | None = None  # intent: the manual gate at this index was opened
    abort_requested: bool = False  # intent: roll back
    baseline: dict[str, dict[str, float]] = field(default_factory=dict)  # analysis counters at step start
    events: list[dict[str, Any]] = field(default_factory=list)  # short audit trail
    own_members: list[str] = field(default_factory=list)  # pool members this release added (invariant I3)
    applied_intents: list[str] = field(default_factory=list)  # ids of operator intents folded in (engine/intents.py)
    pause_requested: bool = False  # intent: stop at the next pass and exit 4 until promoted
    samples: list[dict[str, Any]] = field(default_factory=list)  # one per poll, for `report` (engine/samples.py)

    SCHEMA = 1

    @property
    def current_step(self):
        if 0 <= self.step_index < len(self.pipeline.steps):
            return self.pipeline.steps[self.step_index]
        return None

    def to_json(self) -> str:
        data = asdict(self)
        data["schema"] = self.SCHEMA
        data["kind"] = self.kind.value
        data["phase"] = self.phase.value
        data["pipeline"] = self.pipeline.to_dict()
        samples = data.pop("samples")
        text = json.dumps(data, sort_keys=True, indent=1)
        # the traffic samples one compact line each: indented, they would be most of the record
        lines = ",\n  ".join(json.dumps(s, sort_keys=True, separators=(",", ":")) for s in samples)
        return text[:-2] + (f',\n "samples": [\n  {lines}\n ]\n}}' if samples else ',\n "samples": []\n}')

    @classmethod
    def from_json(cls, text: str) -> "Release":
        data = json.loads(text)
        data.pop("schema", None)
        data["kind"] = ReleaseKind(data["kind"])
        data["phase"] = Phase(data["phase"])
        data["pipeline"] = Pipeline.from_dict(data["pipeline"])
        if data.get("failing_member") is not None or data.get("failure_analysis") is not None:
            from releasectl.engine.failure import AnalysisResult, FailingMember  # only a failed release has them
        if data.get("failing_member") is not None:
            data["failing_member"] = FailingMember(**data["failing_member"])
        if data.get("failure_analysis") is not None:
            data["failure_analysis"] = AnalysisResult.from_dict(data["failure_analysis"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def restore_release_id(rel: Release) -> str:
    """Release label of a previous version relaunched by a rollback after retirement."""
    return f"{rel.id}-restore"
