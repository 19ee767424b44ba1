"""API and engine results -> Result(data for JSON, text for people). Presentation only; no decisions here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from releasectl.cli.exitcodes import ExitCode
from releasectl.cli.render import Result, table
from releasectl.engine.model import Pipeline, describe_step


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def image_result(info) -> Result:
    digest = f", sha256 {info.sha256}" if info.sha256 else ""
    return Result(data={"image": info.to_dict()}, text=lambda: f"baked {info.name} ({_size(info.size)}{digest})")


def images_result(infos) -> Result:
    items = [i.to_dict() for i in infos]
    return Result(
        data={"images": items},
        text=lambda: table(
            [{"version": i["version"], "name": i["name"], "status": i["status"], "size": _size(i["size"]), "created": i["created_at"] or "-"} for i in items]
        ),
    )


def prune_result(report) -> Result:
    data = report.to_dict()
    verb = "would delete" if report.dry_run else "deleted"

    def text() -> str:
        rows = [{"image": name, "action": verb} for name in report.deleted]
        rows += [{"image": k["name"], "action": f"keep ({k['reason']})"} for k in report.kept]
        return table(rows)

    return Result(data=data, text=text)


def stage_result(report) -> Result:
    data = report.to_dict()

    def text() -> str:
        rows = [{"check": c.path, "result": "pass" if c.passed else "FAIL", "detail": c.detail} for c in report.checks]
        tail = f"\nstaging instance {report.server} kept running" if report.kept else ""
        return table(rows) + tail

    return Result(data=data, text=text)


def release_json(summary: dict[str, Any]) -> dict[str, Any]:
    """The `release` object of every release command's JSON (and of status, history and watch), from
    engine/status.py's summary: built in one place, the API's ReleaseInfo (RFC 3339 UTC times, null while unset)."""
    from releasectl.api import ReleaseInfo

    return ReleaseInfo.of_summary(summary).to_dict()


def release_result(info) -> Result:
    return Result(data={"release": info.to_dict()},
                  text=lambda: f"{info.kind} of {info.app} {info.version} in {info.environment}: {info.state} ({info.reason})")


LB_DOWN_HINT = ("a running release restarts it within one poll; otherwise `releasectl rollout --resume`, "
                "`abort`, `rollback`, `promote` or any command that changes the pool restarts it")


def status_result(view) -> Result:
    """`view`: the API's Status, or the engine's StatusView (the live view's frames): the same JSON."""
    from releasectl.api import Status

    data = (view if isinstance(view, Status) else Status(**vars(view))).to_dict()

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


def history_result(entries) -> Result:
    """`entries`: the API's ReleaseInfo rows, or engine/status.py's history summaries (cli/waves_cmd.py)."""
    rows = [e.to_dict() if hasattr(e, "to_dict") else release_json(e) for e in entries]

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


def history_show_result(story) -> Result:
    """`story`: the API's ReleaseStory."""
    data = story.to_dict()
    release, events = data["release"], data["events"]

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

    return Result(data=data, text=text)


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


def config_remote_result(settings, report, remote) -> Result:
    """`config check --remote`: the config's result plus what the cloud has; exit 2, one error per problem."""
    result = config_result(settings, report)
    if remote is None:
        result.data["remote"] = {"checked": False, "note": f"the {settings.provider} provider has no cloud to look at"}
        return result
    result.data["remote"] = {"checked": True, "found": remote.found, "problems": remote.problems,
                             "quota": remote.quota, "quota_source": remote.quota_note}
    local_text = result.text

    def text() -> str:
        lines = ["remote check: the cloud has", *(f"  openstack.{key}: {what}" for key, what in remote.found.items())]
        if remote.quota:
            lines.append(f"quota headroom ({remote.quota_note}):")
            lines.append(table([{"resource": k, "used": v["used"], "limit": "unlimited" if v["limit"] < 0 else v["limit"],
                                 "free": "unlimited" if v["free"] is None else v["free"]} for k, v in remote.quota.items()]))
        else:
            lines.append(remote.quota_note)
        return (local_text() if local_text else "") + "\n".join(lines)

    result.text = text
    if remote.problems:
        result.exit_code = int(ExitCode.USAGE)
        result.errors = [{"code": "usage", "message": problem} for problem in remote.problems]
    return result


def config_problems_result(problems: list, limit: int) -> Result:
    """Every problem of `config check`, one `file:line: key.path: what is wrong` each, with its hint."""
    errors = [{"code": "usage", "message": p.message, **({"hint": p.hint} if p.hint else {})} for p in problems[:limit]]
    if len(problems) > limit:
        errors.append({"code": "usage", "message": f"{len(problems) - limit} more problem(s) not shown; fix these first"})
    return Result(data={"problems": len(problems)}, exit_code=2, errors=errors)


def init_result(directory: Path, done) -> Result:
    """What init wrote; for openstack, what it chose from the cloud (or left as placeholders) and why."""
    files = [str(p) for p in done.written]
    data: dict[str, Any] = {"directory": str(directory.resolve()), "written": files}
    lines = [f"wrote {f}" for f in files]
    next_step = f"next: cd {directory} && releasectl bake 1.0.0"
    if done.choices:
        data["openstack"] = {
            "choices": {c.key: {"value": c.value, "placeholder": c.placeholder, "why": c.why} for c in done.choices},
            "found": done.inventory,
            "cloud_error": done.cloud_error,
        }
        if done.cloud_error:
            lines.append(f"could not look at the cloud: {done.cloud_error}")
        if done.inventory:
            inv = done.inventory
            lines.append("found: " + "; ".join(f"{len(inv[k])} {k.replace('_', ' ')}" for k in
                                               ("flavors", "images", "networks", "servers", "load_balancers", "pools", "zones")))
        lines.append(table([{"openstack": c.key, "value": c.value, "why": c.why} for c in done.choices]))
        if done.placeholders:
            next_step = (f"next: cd {directory} && releasectl env up (network, load balancer, pool), releasectl builder up, "
                         f"or edit the placeholders ({', '.join(done.placeholders)}); then releasectl config check --remote")
        else:
            next_step = f"next: cd {directory} && releasectl config check --remote && releasectl bake 1.0.0"
    return Result(data=data, text=lambda: "\n".join([*lines, next_step]))


def down_result(stopped: list[str]) -> Result:
    return Result(data={"stopped": stopped}, text=lambda: f"stopped {len(stopped)} server(s) and the load balancer")


def gc_result(report) -> Result:
    verb = "would remove" if report.dry_run else "removed"
    return Result(
        data=report.to_dict(),
        text=lambda: f"{verb}: {len(report.members)} member(s), {len(report.servers)} server(s), {len(report.images)} image(s)"
        + "".join(f"\n  {n}" for n in report.members + report.servers + report.images),
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
    from releasectl.api import IntentInfo, ReleaseInfo, release_or_intent

    if not isinstance(result, (IntentInfo, ReleaseInfo)):  # the engine's Release or Posted (cli/waves_cmd.py)
        result = release_or_intent(result)
    if not isinstance(result, IntentInfo):
        return release_result(result)
    rel, runner = result.release, result.runner
    if result.state == "applied":
        text = f"{result.kind} applied: {rel.kind} of {rel.app} {rel.version} in {rel.environment} is {rel.state} ({rel.reason})"
    else:
        text = (f"{result.kind} of {rel.app} {rel.version} accepted (intent {result.id}); the running "
                f"{runner.get('command')} (pid {runner.get('pid') or '?'} on {runner.get('host') or '?'}) applies it at its next pass")
    return Result(data=result.to_dict(), text=lambda: text)


def demo_result(summary: dict[str, Any]) -> Result:
    result = Result(data={"demo": summary}, text=lambda: summary.get("table", ""))
    if not summary.get("zero_downtime", True):
        failed = summary.get("totals", {}).get("failed", "some")
        result.exit_code = 1
        result.errors = [{"code": "requests_failed", "message": f"the demo saw {failed} failed requests through the load balancer"}]
    return result
