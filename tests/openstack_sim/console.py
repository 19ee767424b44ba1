"""User data "run" at first boot, for the console log (``os-getConsoleOutput``). Nothing is executed.

The simulator reads a boot script the way a tiny shell would, line by line, and only these forms have an
effect: ``echo TEXT`` (a console line), ``echo TEXT > PATH`` / ``>> PATH`` (a file of the server, which
snapshots carry and the app serves at ``/files/PATH``), ``sleep N`` (delays what follows, at most 600 s),
``exit N`` and ``false`` (the script stops there with that status). Any other line is shown as run
(``+ line``) and does nothing. Both shapes releasectl sends are understood:

- its shell wrapper: the recipe sits in a ``<<'RELEASECTL_RECIPE_EOF'`` heredoc; the wrapper prints
  ``RELEASECTL-RECIPE-DONE`` when the recipe ends with status 0, else ``RELEASECTL-RECIPE-FAILED <status>``;
- ``#cloud-config``: ``write_files`` become files, then ``runcmd`` runs as one script (as cloud-init does:
  an ``exit`` ends it, so a marker echoed by a later entry never shows).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

HEREDOC = re.compile(r"<<\s*'RELEASECTL_RECIPE_EOF'\n(.*?)\nRELEASECTL_RECIPE_EOF\n", re.S)
DONE, FAILED = "RELEASECTL-RECIPE-DONE", "RELEASECTL-RECIPE-FAILED"
MAX_SLEEP = 600.0
MAX_LINES = 2000


@dataclass
class Step:
    delay: float  # seconds after boot at which the line shows
    line: str


@dataclass
class Run:
    steps: list[Step] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    status: int = 0


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return [line]


def run_script(text: str, run: Run, clock: float = 0.0) -> float:
    """Read `text` as the tiny shell above into `run`; returns the time it ends. Stops at exit/false."""
    for raw in text.splitlines()[:MAX_LINES]:
        line = raw.strip()
        if not line or line.startswith("#") or line in ("set -e", "set -eu", "set -euo pipefail"):
            continue
        words = _words(line)
        if not words:
            continue
        if words[0] == "sleep" and len(words) == 2:
            try:
                clock += min(MAX_SLEEP, max(0.0, float(words[1])))
            except ValueError:
                pass
            continue
        if words[0] == "exit":
            run.status = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
            return clock
        if words[0] == "false":
            run.status = 1
            return clock
        if words[0] == "echo":
            redirect = next((i for i, w in enumerate(words) if w in (">", ">>")), None)
            text_words = words[1:redirect] if redirect is not None else words[1:]
            content = " ".join(text_words)
            if redirect is not None and redirect + 1 < len(words) and words[redirect + 1] != "/dev/console":
                path = words[redirect + 1].lstrip("/")
                previous = run.files.get(path, "") if words[redirect] == ">>" else ""
                run.files[path] = previous + content + "\n"
            else:
                run.steps.append(Step(clock, content))
            continue
        run.steps.append(Step(clock, f"+ {line}"))
    return clock


def run_user_data(user_data: str | None) -> Run:
    """What the first boot prints after cloud-init's own lines, and the files it leaves."""
    run = Run()
    if not user_data:
        return run
    if user_data.lstrip().startswith("#cloud-config"):
        try:
            doc: Any = yaml.safe_load(user_data)
        except yaml.YAMLError as exc:
            run.steps.append(Step(0.0, f"cloud-init: invalid cloud-config: {exc}"))
            return run
        doc = doc if isinstance(doc, dict) else {}
        for entry in doc.get("write_files") or []:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                run.files[entry["path"].lstrip("/")] = str(entry.get("content", ""))
        commands = [c if isinstance(c, str) else " ".join(shlex.quote(str(a)) for a in c) for c in doc.get("runcmd") or []]
        run_script("\n".join(commands), run)
        return run
    recipe = HEREDOC.search(user_data)
    if recipe is None:
        run_script(user_data, run)
        return run
    end = run_script(recipe.group(1), run)
    run.steps.append(Step(end, DONE if run.status == 0 else f"{FAILED} {run.status}"))
    return run
