"""The CLI's error boundary and the end of every command, without typer: an exception becomes one message on
stderr and one exit code, a command's Result becomes its output. The typer app (cli/app.py) and the
read-only commands that run without typer (cli/fastpath.py) both end here, so both say things alike."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from releasectl.cli.exitcodes import ExitCode, classify, hint_for
from releasectl.cli.release_json import JSON_DATA
from releasectl.cli.render import Result, close_printers, emit_result
from releasectl.cli.runtime import Globals, note_release
from releasectl.errors import ReleasectlError, UsageError
from releasectl.logs import after_import


def set_globals(g: Globals, *, config: Path | None, env: str | None, output: str, verbose: bool,
                state_dir: Path | None, os_cloud: str | None) -> None:
    """The global options, checked (a UsageError, exit 2, before anything is read), and the logging they ask for."""
    if output not in ("table", "json"):
        raise UsageError(f"--output must be table or json, got {output!r}")
    for option, value in (("--config", config), ("--state-dir", state_dir), ("--env", env), ("--os-cloud", os_cloud)):
        if value is not None and ("\x00" in str(value) or len(str(value)) > 4096):
            raise UsageError(f"{option} must be a path or name without NUL characters, of at most 4096 characters")
    g.config, g.env, g.output, g.verbose, g.state_dir = config, env, output, verbose, state_dir
    g.os_cloud = os_cloud
    after_import(lambda: set_up_logging(verbose))  # once something imports logging: `status` never does


def set_up_logging(verbose: bool) -> None:
    """-v: DEBUG, else WARNING, to stderr, each line with its time, level and logger."""
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet_http_logs()


def quiet_http_logs() -> None:
    """urllib3 logs each request line, query string included, at DEBUG: keep it at WARNING even with -v
    (provider modules log their own requests, redacted)."""
    import logging

    for name in ("urllib3", "requests", "keyring"):
        logging.getLogger(name).setLevel(logging.WARNING)


def finish(g: Globals, result: Result) -> int:
    """Print a command's result (and its errors on stderr); its exit code."""
    note_release(result.data)
    emit_result(result, g.output)
    g.printer.close()
    for error in result.errors if result.exit_code else ():
        sys.stderr.write(f"releasectl: {label(result.exit_code)}: {error['message']}\n")
        if error.get("hint"):
            sys.stderr.write(f"  hint: {error['hint']}\n")
    return result.exit_code


def guarded(argv: list[str], command: Callable[[], int]) -> int:
    """Run `command`; map every exception it raises to one message on stderr and one exit code."""
    output = "json" if wants_json(argv) else "table"
    verbose = "-v" in argv or "--verbose" in argv
    try:
        return command()
    except ReleasectlError as exc:
        code, name = classify(exc)
        if verbose:
            print_traceback()
        return fail(code, name, exc.message, exc.hint, output, getattr(exc, JSON_DATA, None))
    except KeyboardInterrupt:
        return fail(ExitCode.INFRA, "interrupted", "interrupted by a signal", None, output)
    except Exception as exc:  # a bug: say so plainly, traceback only with -v
        if verbose:
            print_traceback()
        return fail(ExitCode.INFRA, "internal", f"internal error: {type(exc).__name__}: {exc}", "rerun with -v for a traceback", output)
    finally:
        close_printers()


def print_traceback() -> None:
    """-v: the traceback of the exception being handled (traceback is imported only then)."""
    import traceback

    traceback.print_exc(file=sys.stderr)


def wants_json(argv: list[str]) -> bool:
    for i, arg in enumerate(argv):
        if arg in ("--output=json", "-o=json"):
            return True
        if arg in ("--output", "-o") and i + 1 < len(argv) and argv[i + 1] == "json":
            return True
    return False


def label(code: int) -> str:
    """A manual gate (exit 4) is where the release waits for `promote`: a notice, not an error."""
    return "notice" if code == ExitCode.PAUSED else "error"


def fail(code: ExitCode, name: str, message: str, hint: str | None, output: str, data: dict | None = None) -> int:
    hint_text = hint_for(code, hint)
    sys.stderr.write(f"releasectl: {label(code)}: {message}\n")
    if hint_text:
        sys.stderr.write(f"  hint: {hint_text}\n")
    if output == "json":
        error = {"code": name, "message": message}
        if hint_text:
            error["hint"] = hint_text
        emit_result(Result(data=data or {}, exit_code=int(code), errors=[error]), "json")
    return int(code)
