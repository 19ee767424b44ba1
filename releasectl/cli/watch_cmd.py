"""`releasectl status --watch`: the live view (cli/watch.py) until Ctrl-C or the end of the release."""

from __future__ import annotations

import dataclasses

from releasectl.cli import views
from releasectl.cli.exitcodes import ExitCode
from releasectl.cli.render import Result
from releasectl.cli.runtime import Globals, engine_context


def status_watch(g: Globals) -> Result:
    """Watch, then hand back the last status with the watched release and the exit code it ended with
    (0 on Ctrl-C): with `-o json`, one document at the end."""
    from releasectl.cli.watch import watch_status

    code, frame = watch_status(engine_context(g, writes=False))
    if frame is None:
        return Result(data={"release": None}, exit_code=code)
    result = views.status_result(frame.view)
    result.data["release"] = views.release_json(frame.release) if frame.release else None
    result.data["traffic"] = [dataclasses.asdict(v) for v in frame.versions]  # the last sample's figures
    result.exit_code, result.errors = code, []
    if code == ExitCode.ROLLED_BACK and frame.release:
        r = frame.release
        result.errors = [{"code": "rolled_back", "message": f"the {r['kind']} of {r['version']} {r['state']}: {r['failure'] or r['reason']}"}]
    return result
