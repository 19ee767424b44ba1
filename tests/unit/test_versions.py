from __future__ import annotations

import pytest

from releasectl.engine.versions import parse_version, version_key
from releasectl.errors import UsageError


@pytest.mark.parametrize("text,hint", [("1.4", "1.4.0"), ("v1.4.0", "1.4.0"), ("2", "2.0.0"), ("1.4.0.1", None), ("latest", None)])
def test_bad_versions_get_a_hint(text, hint):
    with pytest.raises(UsageError) as info:
        parse_version(text)
    assert "not a semantic version" in str(info.value)
    assert (info.value.hint is None) if hint is None else (hint in info.value.hint)


def test_prereleases_and_precedence():
    assert str(parse_version("1.5.0-rc.1")) == "1.5.0-rc.1"
    ordered = sorted(["1.10.0", "1.9.0", "1.5.0-rc.1", "1.5.0", "1.5.0-rc.2", "0.9.9"], key=version_key)
    assert ordered == ["0.9.9", "1.5.0-rc.1", "1.5.0-rc.2", "1.5.0", "1.9.0", "1.10.0"]
