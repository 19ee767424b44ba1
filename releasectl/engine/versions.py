"""Version strings: strict semver, with a hint for the near misses people type.

semver is imported when a version is parsed, not with this module: `rollback` loads the module but parses
no version before its weight change, and semver's import would sit on that critical path."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from releasectl.errors import UsageError

if TYPE_CHECKING:
    import semver


def parse_version(text: str) -> semver.Version:
    import semver

    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        pass
    hint = None
    candidate = text[1:] if text[:1] in ("v", "V") else text
    match = re.fullmatch(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?(.*)", candidate)
    if match:
        major, minor, patch, rest = match.groups()
        suggestion = f"{int(major)}.{int(minor or 0)}.{int(patch or 0)}{rest}"
        if semver.Version.is_valid(suggestion):
            hint = f"did you mean {suggestion}?"
    raise UsageError(
        f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.4.0 or 1.5.0-rc.1)", hint=hint
    )


def version_key(text: str) -> semver.Version:
    """Sort key by semver precedence; unparsable versions sort first."""
    import semver

    try:
        return semver.Version.parse(text)
    except ValueError:
        return semver.Version(0)
