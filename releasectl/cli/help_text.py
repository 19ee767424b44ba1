"""`--help` extras: an example per command and the exit-code table, as each command's epilog.

Kept out of the command definitions (one table here, applied to whatever `app` registered when its click
command is built), so commands added by other modules get the exit codes too, and an example by adding one
line below.
"""

from __future__ import annotations

from typing import Any

from releasectl.cli.exitcodes import ExitCode

EXAMPLES: dict[str, str] = {
    "": "releasectl bake 1.4.0 && releasectl rollout 1.4.0 --output json",
    "init": "releasectl init shop --app shop --port 8080",
    "config check": "releasectl config check --env staging",
    "pipelines": "releasectl pipelines --env production",
    "bake": "releasectl bake 1.4.0",
    "images": "releasectl images --output json",
    "images prune": "releasectl images prune --keep 5 --dry-run",
    "stage": "releasectl stage 1.4.0 --env staging",
    "rollout": "releasectl rollout 1.4.0 --pipeline canary --output json",
    "promote": "releasectl promote --wait",
    "abort": "releasectl abort --wait --wait-timeout 5m",
    "pause": "releasectl pause",
    "rollback": "releasectl rollback --to 1.3.2",
    "status": "releasectl status --output json",
    "history": "releasectl history",
    "history show": "releasectl history show latest --output json",
    "builder": "releasectl builder up --recipe patch.sh",
    "builder up": "releasectl builder up --from 1.3.0 --recipe patch.sh --timeout 15m",
    "builder down": "releasectl builder down",
    "builder status": "releasectl builder status --output json",
    "env": "releasectl env plan",
    "env plan": "releasectl env plan --env staging --output json",
    "env up": "releasectl env up --env staging",
    "env down": "releasectl env down --env staging --force",
    "report": "releasectl report latest --html report.html",
    "down": "releasectl down --env staging",
    "gc": "releasectl gc --dry-run",
    "doctor": "releasectl doctor --fix",
    "unlock": "releasectl unlock",
    "demo": "releasectl demo --keep",
    "login": "printf '%s\\n' \"$OS_PASSWORD\" | releasectl login --cloud mycloud --password-stdin",
}

EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.ROLLED_BACK: "the release failed and was rolled back",
    ExitCode.USAGE: "usage, config or credential error; nothing changed",
    ExitCode.LOCKED: "another release holds the lock; nothing changed",
    ExitCode.PAUSED: "paused at a manual gate (`releasectl promote` continues)",
    ExitCode.INFRA: "provider or infrastructure error; the release is resumable",
}


def exit_code_table() -> str:
    # "\b" keeps click from re-wrapping the paragraph that follows it
    return "\b\nExit codes:\n" + "\n".join(f"  {int(code)}  {text}" for code, text in EXIT_CODES.items())


def epilog(command: str) -> str:
    example = EXAMPLES.get(command)
    head = f"\b\nExample:\n  {example}\n\n" if example else ""
    return head + exit_code_table()


def install(app: Any) -> None:
    """Set the epilog of every command registered on `app` (and its sub-apps) that has none of its own."""
    if getattr(app, "_releasectl_help", False):
        return
    if not app.info.epilog:
        app.info.epilog = epilog("")
    for info in app.registered_commands:
        name = info.name or _name(info)
        if not info.epilog:
            info.epilog = epilog(name)
    for group in app.registered_groups:
        sub = group.typer_instance
        if sub is None:
            continue
        if not group.epilog and not sub.info.epilog:
            group.epilog = epilog(group.name or "")
        for info in sub.registered_commands:
            name = info.name or _name(info)
            if not info.epilog:
                info.epilog = epilog(f"{group.name} {name}")
    app._releasectl_help = True


def _name(info: Any) -> str:
    from typer.main import get_command_name

    return get_command_name(info.callback.__name__) if info.callback else ""
