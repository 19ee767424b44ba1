"""cli/render.py's own "simple" table is tabulate's to the character, or is left to tabulate. In process."""

from __future__ import annotations

import enum

from hypothesis import given, settings
from hypothesis import strategies as st
from tabulate import tabulate

from releasectl.cli.render import plain_table, table


class Kind(str, enum.Enum):
    STABLE = "stable"


CELLS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "x", "a b", " lead", "trail ", "two\nlines", "café", "tab\there", "\x1b[1mbold\x1b[0m", "0007",
                     "1e3", "-", "--", "1.0.0", "2026-12-06T11:24:06Z", "shop-1.0.0", "10.5 %", Kind.STABLE, b"bytes"]),
    st.text(max_size=12),
)
KEYS = st.sampled_from(["version", "name", "status", "a", "", "size", "x y", "é"])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.dictionaries(KEYS, CELLS, max_size=5), min_size=1, max_size=5))
def test_plain_table_is_tabulates_simple_table_or_declines(rows):
    plain = plain_table(rows)
    if plain is not None:
        assert plain == tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True)


def test_an_ordinary_table_is_made_without_tabulate():
    rows = [{"version": "1.0.0", "name": "shop-1.0.0", "status": "baked", "size": "2.1 KiB", "live": False, "n": 3},
            {"version": "1.1.0", "name": "shop-1.1.0", "status": Kind.STABLE, "size": None, "n": 12}]
    assert plain_table(rows) is not None
    assert table(rows) == tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True)
