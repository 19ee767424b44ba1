"""`releasectl report [ID|latest] --html FILE`: a release's timeline as one self-contained HTML page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from releasectl.cli.render import Result
from releasectl.errors import UsageError


def register(app: typer.Typer, finish, globals_of) -> None:
    @app.command("report")
    def report(
        ctx: typer.Context,
        html_file: Annotated[Path, typer.Option("--html", help="Write the report to this HTML file (replaced if it exists).")],
        release: Annotated[str, typer.Argument(help="Release id (or a unique prefix), or latest.")] = "latest",
    ) -> None:
        """Write one self-contained HTML page (inline SVG, no script, no network) that charts a release:
        weight per version, request rate, error rate and p95 over time, its steps and events, and the verdict."""
        from releasectl.cli.report_html import chart_summary, render_html
        from releasectl.cli.runtime import engine_context
        from releasectl.engine import records

        if "\x00" in release or len(release) > 64:
            raise UsageError("RELEASE must be a release id of at most 64 characters, or latest")
        rel = records.find(engine_context(globals_of(ctx), writes=False).provider, release)
        page = render_html(rel)
        target = html_file.expanduser()
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(page, encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
        data = {"report": {"release_id": rel.id, "file": str(target), "bytes": len(page.encode()), **chart_summary(rel)}}
        finish(ctx, Result(data=data, text=lambda: f"wrote the report of {rel.id} ({rel.version}, {rel.phase.value}) to {target}"))
