"""releasectl/logs.py: loggers that import `logging` on first use, and the CLI's logging set-up applied when
`logging` is first imported, by whoever imports it (issue 12: `status` logs nothing and skips the import). The
set-up must be the same as if it were done at start-up: a fresh interpreter per case, as the CLI has."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from releasectl.logs import Logger, after_import

CHILD = """
import json, sys
from releasectl.cli.boundary import set_globals
from releasectl.cli.runtime import Globals
set_globals(Globals(), config=None, env=None, output="table", verbose=sys.argv[1] == "verbose", state_dir=None,
            os_cloud=None)
loaded_before = "logging" in sys.modules
if sys.argv[2] == "ours":
    from releasectl.logs import Logger
    Logger("releasectl.test").isEnabledFor(10)
else:  # a library that imports logging itself
    import logging.handlers
import logging
root = logging.getLogger()
print(json.dumps({"loaded_before": loaded_before, "level": root.level,
                  "handlers": [(type(h).__name__, h.stream is sys.stderr, h.formatter._fmt) for h in root.handlers],
                  "urllib3": logging.getLogger("urllib3").level,
                  "waiting": [type(f).__name__ for f in sys.meta_path if type(f).__name__ == "_AfterImport"]}))
"""


@pytest.mark.parametrize("first", ["ours", "library"])
@pytest.mark.parametrize("verbose", ["verbose", "quiet"])
def test_the_cli_set_up_applies_when_logging_is_first_imported(first, verbose):
    done = subprocess.run([sys.executable, "-c", CHILD, verbose, first], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["loaded_before"] is False
    assert found["level"] == (logging.DEBUG if verbose == "verbose" else logging.WARNING)
    assert found["handlers"] == [["StreamHandler", True, "%(asctime)s %(levelname)s %(name)s: %(message)s"]]
    assert found["urllib3"] == logging.WARNING
    assert found["waiting"] == []


def test_logger_is_the_named_logging_logger():
    log = Logger("releasectl.test-logs")
    assert log.name == "releasectl.test-logs"
    assert log.warning.__self__ is logging.getLogger("releasectl.test-logs")


def test_after_import_runs_at_once_when_logging_is_loaded():
    ran = []
    after_import(lambda: ran.append(1))
    assert ran == [1]
    assert not [f for f in sys.meta_path if type(f).__name__ == "_AfterImport"]
