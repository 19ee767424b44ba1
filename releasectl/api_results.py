"""The results of the rarer API calls (releasectl/api.py re-exports them): history show, an intent handed to a
live runner, stage, prune, gc, env, builder and quota. Apart so that `status` and `images` do not create
their dataclasses at start-up."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from releasectl.api import ReleaseInfo, _Json
from releasectl.timefmt import rfc3339, rfc3339_or_dash

if TYPE_CHECKING:
    from releasectl.providers.base import Builder, Quota


@dataclass(frozen=True)
class TimelineEvent(_Json):
    """One line of a release's story (`history show`)."""

    at: str | None  # RFC 3339 UTC
    event: str  # started, weights, step, analysis, intent, operator, rollback, ended
    step: int | None
    message: str
    weight: dict[str, float] | None  # {"requested": %, "achieved": %} of the new version
    analysis: dict[str, Any] | None  # error rates, requests, source, p95 of an analysis verdict
    by: str | None  # user@host of who acted

    @classmethod
    def of(cls, entry: Any) -> "TimelineEvent":
        return cls(at=rfc3339(entry.at), event=entry.event, step=entry.step, message=entry.message,
                   weight=entry.weight, analysis=entry.analysis, by=entry.by)


@dataclass(frozen=True)
class ReleaseStory(_Json):
    """`history show`: one release and its timeline."""

    release: ReleaseInfo
    events: list[TimelineEvent]


@dataclass(frozen=True)
class IntentInfo(_Json):
    """`promote`/`abort`/`pause` while another process runs the release: the intent handed to that runner."""

    id: str
    kind: str
    release_id: str
    version: str
    posted_at: str
    state: str  # accepted | applied (after a runner wait)
    runner: dict[str, Any]
    release: ReleaseInfo

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        release = data.pop("release")
        return {"intent": data, "release": release}

    @classmethod
    def of(cls, posted: Any) -> "IntentInfo":
        intent, runner = posted.intent, posted.runner
        return cls(id=intent.id, kind=intent.kind.value, release_id=intent.release_id, version=posted.release.version,
                   posted_at=rfc3339(intent.at), state="applied" if posted.waited else "accepted",
                   runner={k: runner.get(k) for k in ("command", "host", "pid", "user", "ci_job")},
                   release=ReleaseInfo.of(posted.release))


@dataclass(frozen=True)
class CheckInfo(_Json):
    path: str
    expected_status: int
    status: int | None
    latency_ms: float
    passed: bool
    detail: str


@dataclass(frozen=True)
class StageReport(_Json):
    version: str
    server: str
    kept: bool
    passed: bool
    checks: list[CheckInfo]

    @classmethod
    def of(cls, result: Any) -> "StageReport":
        checks = [CheckInfo(path=r.check.path, expected_status=r.check.expected_status, status=r.probe.status,
                            latency_ms=round(r.probe.latency * 1000, 1), passed=r.passed, detail=r.detail)
                  for r in result.results]
        return cls(version=result.version, server=result.server.name, kept=result.kept, passed=result.passed, checks=checks)


@dataclass(frozen=True)
class PruneReport(_Json):
    dry_run: bool
    deleted: list[str]
    kept: list[dict[str, str]]  # {"name", "reason"}


@dataclass(frozen=True)
class GcReport(_Json):
    dry_run: bool
    members: list[str]  # removed (or, dry run, would be)
    servers: list[str]
    images: list[str]
    spared: list[str]  # left alone: state about them is damaged (`releasectl doctor`)


@dataclass(frozen=True)
class EnvInfo(_Json):
    """`env plan|up|down`: the changes (planned, or made by `down`), what was applied, and what is there."""

    action: str  # plan | up | down
    changes: list[dict[str, str]]  # {"action", "kind", "name", "id", "detail"}; empty after `up`
    applied: int
    unchanged: int
    resources: list[dict[str, Any]]  # {"kind", "name", "id", "owned"[, "address"]}
    retired: list[str]  # servers `env_down(force=True)` retired first

    @classmethod
    def of(cls, report: Any) -> "EnvInfo":
        from releasectl.engine.env import change_rows, resource_rows

        return cls(action=report.action, changes=change_rows(report.changes) if report.action != "up" else [],
                   applied=report.applied, unchanged=report.unchanged, resources=resource_rows(report.resources),
                   retired=list(report.retired))


@dataclass(frozen=True)
class BuilderInfo(_Json):
    """The builder from code (`builder up|status`)."""

    id: str
    name: str
    status: str  # building | ready | failed | ...
    source_image: str  # the image id it booted from, or "base"
    recipe_sha256: str | None
    created_at: str  # RFC 3339 UTC, "-" when unknown
    address: str | None
    port: int | None
    detail: str | None  # why it failed: the tail of the recipe's output

    @classmethod
    def of(cls, builder: "Builder") -> "BuilderInfo":
        return cls(id=builder.id, name=builder.name, status=builder.status.value,
                   source_image=builder.source_image_id or "base", recipe_sha256=builder.recipe_sha256 or None,
                   created_at=rfc3339_or_dash(builder.created_at), address=builder.address, port=builder.port,
                   detail=builder.detail or None)


@dataclass(frozen=True)
class QuotaInfo(_Json):
    """The project's quota as the provider reads it: {resource: {"used", "limit", "free"}} (limit -1 and free
    None: unlimited; a resource the cloud does not publish is absent), and what one server takes."""

    resources: dict[str, dict[str, int | None]]
    per_server: dict[str, int]

    @classmethod
    def of(cls, quota: "Quota") -> "QuotaInfo":
        from releasectl.providers.base import UNLIMITED

        resources: dict[str, dict[str, int | None]] = {}
        for name, limit in quota.limits.items():
            used = quota.used.get(name, 0)
            resources[name] = {"used": used, "limit": limit, "free": None if limit == UNLIMITED else max(0, limit - used)}
        return cls(resources=resources, per_server=dict(quota.per_server))
