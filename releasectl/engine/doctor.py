"""`releasectl doctor [--fix]`: find every damaged or inconsistent piece of state, say what --fix does, do it.

The engine checks the release records (every one must make a Release); the provider checks the state it
keeps for itself (Provider.check_state: for local, lock.json, lb.json, members.json, server.json, image
manifests and processes no record owns). Fixes never delete what cannot be read: it is moved aside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from releasectl.engine import records
from releasectl.engine.records import report_damage  # noqa: F401  (re-exported: it lives with the records it reports)
from releasectl.engine.context import EngineContext
from releasectl.engine.lock import LockKeeper
from releasectl.errors import DamagedState
from releasectl.providers.base import Label, Server, StateIssue

RECORD_ISSUE = "record:"


@dataclass(frozen=True)
class Finding:
    path: str
    problem: str
    fix: str
    done: str | None = None  # what --fix did
    error: str | None = None  # why --fix could not

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "problem": self.problem, "fix": self.fix, "done": self.done, "error": self.error}


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)
    fixed: bool = False  # --fix was asked
    remaining: list[Finding] = field(default_factory=list)  # still found after the fixes

    @property
    def healthy(self) -> bool:
        return not (self.remaining if self.fixed else self.findings)


def refuse_on_damaged_servers(servers: Iterable[Server]) -> None:
    """A release must know every server it shifts traffic away from: with a running server whose record is
    damaged (unknown role, possibly serving) it refuses before changing anything. One with no process
    cannot serve: gc and down remove it."""
    for server in servers:
        if Label.DAMAGED in server.labels and server.port:
            raise DamagedState(f"the record of server {server.id}", server.labels[Label.DAMAGED])


def record_issues(ctx: EngineContext) -> list[StateIssue]:
    """Release records (current and history) that do not read back as a Release."""
    keys = [records.CURRENT, *ctx.provider.list_records(records.HISTORY_PREFIX)]
    issues = []
    for key in keys:
        damage = records.check(ctx.provider, key)
        if damage is not None:
            issues.append(StateIssue(f"{RECORD_ISSUE}{key}", damage.path, damage.what,
                                     f"move the record {key!r} aside (status, gc and down then see no release in it)"))
    return issues


def diagnose(ctx: EngineContext) -> list[StateIssue]:
    return record_issues(ctx) + ctx.provider.check_state()


def _finding(issue: StateIssue, **kw: str | None) -> Finding:
    return Finding(path=issue.path, problem=issue.problem, fix=issue.fix, **kw)


def _apply(ctx: EngineContext, issue: StateIssue) -> str:
    if issue.key.startswith(RECORD_ISSUE):
        key = issue.key[len(RECORD_ISSUE):]
        if records.check(ctx.provider, key) is None:
            return "the record reads back fine now"
        where = ctx.provider.quarantine_record(key)
        return f"moved it to {where}" if where else "it is gone already"
    return ctx.provider.fix_state(issue)


def doctor(ctx: EngineContext, *, fix: bool) -> DoctorReport:
    if not fix:
        return DoctorReport(findings=[_finding(i) for i in diagnose(ctx)])
    report = DoctorReport(fixed=True)
    with LockKeeper(ctx.provider, {**ctx.actor, "command": "doctor --fix"}, ttl=ctx.lock_ttl):
        for issue in diagnose(ctx):
            ctx.event("doctor", f"{issue.path}: {issue.problem}; {issue.fix}")
            try:
                done = _apply(ctx, issue)
            except DamagedState as exc:
                report.findings.append(_finding(issue, error=exc.message))
                continue
            except NotImplementedError:
                report.findings.append(_finding(issue, error=f"the {ctx.provider.name} provider cannot do this"))
                continue
            ctx.event("doctor", done)
            report.findings.append(_finding(issue, done=done))
        report.remaining = [_finding(i) for i in diagnose(ctx)]
    return report
