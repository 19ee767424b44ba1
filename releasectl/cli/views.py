"""Engine results -> Result(data for JSON, text for people). Presentation only; no decisions here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from releasectl.cli.exitcodes import ExitCode
from releasectl.cli.render import Result, table
from releasectl.engine.model import Pipeline, Release, describe_step
from releasectl.providers.base import Image
from releasectl.timefmt import rfc3339


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def image_data(image: Image, status: str) -> dict[str, Any]:
    return {
        "version": image.version,
        "name": image.name,
        "id": image.id,
        "status": status,
        "size": image.size,
        "sha256": image.checksum,
        "created_at": rfc3339(image.created_at or None),
        "source": image.source,
        "protected": image.protected,
        "labels": dict(image.labels),
    }


def image_result(image: Image, env: str) -> Result:
    from releasectl.engine.images import describe_status

    data = image_data(image, describe_status(image, env))
    digest = f", sha256 {image.checksum}" if image.checksum else ""
    return Result(data={"image": data}, text=lambda: f"baked {image.name} ({_size(image.size)}{digest})")


def images_result(rows) -> Result:
    items = [image_data(r.image, r.status) for r in rows]
    return Result(
        data={"images": items},
        text=lambda: table(
            [{"version": i["version"], "name": i["name"], "status": i["status"], "size": _size(i["size"]), "created": i["created_at"] or "-"} for i in items]
        ),
    )


def prune_result(result) -> Result:
    data = {
        "dry_run": result.dry_run,
        "deleted": [i.name for i in result.deleted],
        "kept": [{"name": i.name, "reason": why} for i, why in result.kept],
    }
    verb = "would delete" if result.dry_run else "deleted"

    def text() -> str:
        rows = [{"image": i.name, "action": verb} for i in result.deleted]
        rows += [{"image": i.name, "action": f"keep ({why})"} for i, why in result.kept]
        return table(rows)

    return Result(data=data, text=text)


def stage_result(result) -> Result:
    checks = [
        {
            "path": r.check.path,
            "expected_status": r.check.expected_status,
            "status": r.probe.status,
            "latency_ms": round(r.probe.latency * 1000, 1),
            "passed": r.passed,
            "detail": r.detail,
        }
        for r in result.results
    ]
    data = {"version": result.version, "server": result.server.name, "kept": result.kept, "passed": result.passed, "checks": checks}

    def text() -> str:
        rows = [{"check": c["path"], "result": "pass" if c["passed"] else "FAIL", "detail": c["detail"]} for c in checks]
        tail = f"\nstaging instance {result.server.name} kept running" if result.kept else ""
        return table(rows) + tail

    return Result(data=data, text=text)


def release_json(summary: dict[str, Any]) -> dict[str, Any]:
    """The `release` object of every release command's JSON (and of status and history): the one place
    it is built, from engine/status.py's summary, with RFC 3339 UTC times (null while unset)."""
    return {**summary, "started_at": rfc3339(summary["started_at"] or None), "ended_at": rfc3339(summary["ended_at"])}


def release_data(rel: Release) -> dict[str, Any]:
    from releasectl.engine.status import release_summary

    return release_json(release_summary(rel))


def release_result(rel: Release) -> Result:
    data = {"release": release_data(rel)}
    return Result(data=data, text=lambda: f"{rel.kind.value} of {rel.app} {rel.version} in {rel.env}: {rel.phase.value} ({rel.reason})")


LB_DOWN_HINT = ("a running release restarts it within one poll; otherwise `releasectl rollout --resume`, "
                "`abort`, `rollback`, `promote` or any command that changes the pool restarts it")


def status_result(view) -> Result:
    data = view.to_dict()
    if view.release:
        data["release"] = release_json(view.release)

    def text() -> str:
        lb = view.lb
        lines = [
            f"app {view.app}, environment {view.environment}, provider {view.provider}",
            f"live version: {view.live_version or 'none'}",
            f"endpoint: {view.endpoint or 'no load balancer running'}",
            f"load balancer: {lb['status'].upper()}" + (f" ({lb['detail']})" if lb["detail"] else ""),
        ]
        if view.lb_problem and lb["status"] == "down":
            lines.append(f"  {LB_DOWN_HINT}")
            lines.append("  the members below are the ones it comes back with (health unknown until then)")
        rel = view.release
        if rel:
            lines.append(
                f"release in progress: {rel['kind']} of {rel['version']} is {rel['state']} at step "
                f"{rel['step']}/{rel['steps']} ({rel['step_description']}): {rel['reason']}"
            )
            if rel["state"] == "interrupted":
                lines.append("  its runner is gone: `releasectl rollout --resume` continues it, `releasectl abort` undoes it")
        else:
            lines.append("release in progress: none")
        if view.lock:
            holder = view.lock["holder"]
            lines.append(f"lock: held by {holder.get('command')} {holder.get('user')}@{holder.get('host')} pid {holder.get('pid')}"
                         + ("" if view.lock["alive"] else f" (dead: {view.lock['dead_reason'] or 'lease expired'})"))
        lines.append("")
        lines.append("members:")
        lines.append(table([
            {k: m[k] for k in ("name", "version", "role", "address", "weight", "share", "health", "admin", "sessions")}
            for m in view.members
        ]))
        lines.append("")
        lines.append("servers:")
        lines.append(table([{k: s[k] for k in ("name", "version", "role", "status", "address")} for s in view.servers]))
        return "\n".join(lines)

    result = Result(data=data, text=text)
    if view.lb_problem:
        result.exit_code = int(ExitCode.INFRA)
        hint = LB_DOWN_HINT if view.lb["status"] == "down" else "the load balancer needs an operator (a failover)"
        result.errors = [{"code": f"lb_{view.lb['status']}", "message": view.lb_problem, "hint": hint}]
    return result


def history_result(rows: list[dict[str, Any]]) -> Result:
    rows = [release_json(r) for r in rows]

    def text() -> str:
        return table([
            {
                "id": r["id"],
                "version": r["version"],
                "kind": r["kind"],
                "outcome": r["state"],
                "from": r["previous_version"] or "-",
                "started": r["started_at"] or "-",
                "ended": r["ended_at"] or "-",
                "by": f"{r['actor'].get('user', '?')}@{r['actor'].get('host', '?')}" + (f" ({r['actor']['ci_job']})" if r["actor"].get("ci_job") else ""),
                "reason": (r["failure"] or r["reason"] or "")[:60],
            }
            for r in rows
        ])

    return Result(data={"releases": rows}, text=text)


def timeline_data(entry) -> dict[str, Any]:
    return {
        "at": rfc3339(entry.at),
        "event": entry.event,
        "step": entry.step,
        "message": entry.message,
        "weight": entry.weight,
        "analysis": entry.analysis,
        "by": entry.by,
    }


def _figures(e: dict[str, Any]) -> str:
    """A timeline row's numbers in words: weights, then the analysis figures."""
    parts = []
    if e["weight"]:
        w = e["weight"]
        parts.append(f"{w['requested']:g}% requested" + (f", {w['achieved']:.2f}% achieved" if "achieved" in w else ""))
    a = e["analysis"]
    if a:
        if a.get("new_error_rate_pct") is not None:
            old = "n/a" if a.get("old_error_rate_pct") is None else f"{a['old_error_rate_pct']:.2f}%"
            parts.append(f"errors new {a['new_error_rate_pct']:.2f}% / old {old} over {a['requests']} req ({a['source']})")
        if a.get("p95_ms") is not None:
            parts.append(f"p95 {a['p95_ms']:g}ms")
    return "; ".join(parts) or "-"


def history_show_result(summary: dict[str, Any], entries: list) -> Result:
    release = release_json(summary)
    events = [timeline_data(e) for e in entries]

    def text() -> str:
        r = release
        head = (f"{r['kind']} {r['id']} of {r['app']} {r['version']} in {r['environment']} "
                f"(from {r['from_version'] or 'none'}, pipeline {r['pipeline']}): {r['state']} at step {r['step']}/{r['steps']}\n"
                f"started {r['started_at']}, ended {r['ended_at'] or '-'}"
                + (f"\nfailed on {r['failing_member']}" if r["failing_member"] else "") + "\n\n")
        return head + table([
            {"time": e["at"], "step": e["step"] if e["step"] is not None else "-", "event": e["event"], "by": e["by"] or "-",
             "figures": _figures(e), "what": e["message"]}
            for e in events
        ])

    return Result(data={"release": release, "events": events}, text=text)


def pipelines_result(pipelines: list[Pipeline], configured: tuple[Pipeline, str] | None = None) -> Result:
    """`configured`: (the pipeline `rollout` uses, its environment), marked in the list; None without a config."""
    chosen = configured[0].source if configured else None
    data: dict[str, Any] = {
        "pipelines": [{**p.to_dict(), "configured": p.source == chosen} for p in pipelines],
        "configured": None if configured is None else {"name": configured[0].name, "source": chosen, "environment": configured[1]},
    }

    def text() -> str:
        blocks = []
        for p in pipelines:
            steps = "\n".join(f"  {i + 1}. {describe_step(s)}" for i, s in enumerate(p.steps))
            mark = f"* {p.name} (configured for {configured[1]})" if configured and p.source == chosen else p.name
            blocks.append(f"{mark}: {p.description}\n{steps}")
        return "\n\n".join(blocks)

    return Result(data=data, text=text)


def config_result(settings, report=None) -> Result:
    import yaml

    effective = settings.effective()
    data: dict = {"config": effective}
    lines = [f"{settings.path}: valid"]
    if report is not None:
        data["checked"] = {"environments": list(report.environments), "pipelines": report.pipelines}
        lines.append(f"environments checked: {', '.join(report.environments)}")
        lines.append("pipelines checked: " + ", ".join(f"{ref} ({path})" for ref, path in report.pipelines.items()))
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return Result(data=data, text=lambda: "\n".join(lines) + "\n" + yaml.dump(effective, Dumper=dumper, sort_keys=False))


def config_problems_result(problems: list, limit: int) -> Result:
    """Every problem of `config check`, one `file:line: key.path: what is wrong` each, with its hint."""
    errors = [{"code": "usage", "message": p.message, **({"hint": p.hint} if p.hint else {})} for p in problems[:limit]]
    if len(problems) > limit:
        errors.append({"code": "usage", "message": f"{len(problems) - limit} more problem(s) not shown; fix these first"})
    return Result(data={"problems": len(problems)}, exit_code=2, errors=errors)


def init_result(directory: Path, written: list[Path]) -> Result:
    files = [str(p) for p in written]
    return Result(
        data={"directory": str(directory.resolve()), "written": files},
        text=lambda: "\n".join([*(f"wrote {f}" for f in files), f"next: cd {directory} && releasectl bake 1.0.0"]),
    )


def down_result(stopped: list[str]) -> Result:
    return Result(data={"stopped": stopped}, text=lambda: f"stopped {len(stopped)} server(s) and the load balancer")


def gc_result(report) -> Result:
    data = {
        "dry_run": report.dry_run,
        "members": report.removed_members,
        "servers": report.deleted_servers,
        "images": report.deleted_images,
        "spared": report.spared,
    }
    verb = "would remove" if report.dry_run else "removed"
    return Result(
        data=data,
        text=lambda: f"{verb}: {len(report.removed_members)} member(s), {len(report.deleted_servers)} server(s), {len(report.deleted_images)} image(s)"
        + "".join(f"\n  {n}" for n in report.removed_members + report.deleted_servers + report.deleted_images),
    )


def doctor_result(report) -> Result:
    findings = [f.to_dict() for f in report.findings]
    remaining = [f.to_dict() for f in report.remaining]
    data = {"fixed": report.fixed, "healthy": report.healthy, "findings": findings, "remaining": remaining}

    def text() -> str:
        if not findings:
            return "no damaged or inconsistent state found"
        column = "done" if report.fixed else "fix"
        rows = [{"path": f["path"], "problem": f["problem"], column: f["done"] or f["error"] if report.fixed else f["fix"]}
                for f in findings]
        tail = ("\nstill wrong after the fixes:\n" + table([{k: f[k] for k in ("path", "problem")} for f in remaining])) if remaining else ""
        return table(rows) + ("" if report.fixed else "\nrun `releasectl doctor --fix` to do the above") + tail

    result = Result(data=data, text=text)
    if not report.healthy:
        left = remaining if report.fixed else findings
        result.exit_code = 2
        result.errors = [{"code": "damaged_state", "message": f"{f['path']}: {f['problem']}"} for f in left]
    return result


def unlock_result(lease) -> Result:
    if lease is None:
        return Result(data={"broken": None}, text=lambda: "no lock was held")
    return Result(data={"broken": dict(lease.owner)}, text=lambda: f"broke the lock held by {lease.owner.get('host')} pid {lease.owner.get('pid')}")


def release_or_intent_result(result) -> Result:
    """`promote`, `abort` and `pause`: the release they drove, or the intent they handed to its runner."""
    from releasectl.engine.intents import Posted

    if not isinstance(result, Posted):
        return release_result(result)
    intent, rel = result.intent, result.release
    runner = result.runner
    data = {
        "intent": {
            "id": intent.id,
            "kind": intent.kind.value,
            "release_id": intent.release_id,
            "version": rel.version,
            "posted_at": rfc3339(intent.at),
            "state": "applied" if result.waited else "accepted",
            "runner": {k: runner.get(k) for k in ("command", "host", "pid", "user", "ci_job")},
        },
        "release": release_data(rel),
    }
    if result.waited:
        text = f"{intent.kind.value} applied: {rel.kind.value} of {rel.app} {rel.version} in {rel.env} is {rel.phase.value} ({rel.reason})"
    else:
        text = (f"{intent.kind.value} of {rel.app} {rel.version} accepted (intent {intent.id}); the running "
                f"{runner.get('command')} (pid {runner.get('pid', '?')} on {runner.get('host', '?')}) applies it at its next pass")
    return Result(data=data, text=lambda: text)


def demo_result(summary: dict[str, Any]) -> Result:
    result = Result(data={"demo": summary}, text=lambda: summary.get("table", ""))
    if not summary.get("zero_downtime", True):
        failed = summary.get("totals", {}).get("failed", "some")
        result.exit_code = 1
        result.errors = [{"code": "requests_failed", "message": f"the demo saw {failed} failed requests through the load balancer"}]
    return result
