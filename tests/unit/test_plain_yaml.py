"""releasectl.plain_yaml reads what PyYAML reads, or declines: for every document it takes, the data and the line
of every key path are exactly those of the PyYAML path (releasectl.yaml_loader), and a document PyYAML refuses
is never taken. Property tests on generated documents and on mutations of the files `init` writes; in process."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releasectl import plain_yaml
from releasectl.config import builtin_pipelines
from releasectl.errors import ConfigError
from releasectl.safe_yaml import MAX_NODES
from releasectl.yaml_loader import parse_document
from tests.conftest import run_cli_in_process

# scalars whose YAML 1.1 meaning is easy to get wrong: octal, hex, sexagesimal, dates, .inf, booleans, nulls
TRICKY = ["canary", "/healthz", "10s", "5m", "1%", "0.5", "2", "-3", "+4", "0", "-0", "010", "0x1f", "0b11", "0o7", "1_000",
          "1:30", "2024-01-01", "1e3", "1.0e+3", ".inf", "-.inf", ".nan", "yes", "No", "ON", "off", "y", "n", "True", "FALSE",
          "null", "Null", "~", "nULL", "a b", "a: b", "a #b", "a#b", "it's", 'say "x"', "{app}-{version}", "'q'", '"q"',
          "''", '""', "'it''s'", '"a\\tb"', "&a x", "*a", "!!int 3", "!!str 3", "|", ">", "@x", "`x`", "%x", "- x", "? x",
          "<<", "=", "1.0.0", "1.5%", "0s", "0x", "00", "1.", ".5", "a,b", "(x)", "x;y", "a{b}", "[x]", "{}", "[]", "é"]
KEYS = ["app", "name", "steps", "x", "a_b", "a-b", "true", "null", "1", "on", "a.b", "<<", "k", "app"]


def pyyaml(text: str):
    try:
        return parse_document(text, "t.yaml")
    except ConfigError:
        return None


def check(text: str) -> bool:
    """The property; True when plain_yaml took the document."""
    taken = plain_yaml.read(text, max_nodes=MAX_NODES)
    if taken is not None:
        assert taken == pyyaml(text), text
    return taken is not None


def flow(items: list[str], mapping: bool) -> str:
    if mapping:
        return "{" + ", ".join(f"{k}: {v}" for k, v in zip(KEYS, items)) + "}"
    return "[" + ", ".join(items) + "]"


@st.composite
def documents(draw, depth: int = 0, indent: int = 0) -> str:
    pad = " " * indent
    step = draw(st.sampled_from([2, 4, 1, 3]))
    lines = []
    if draw(st.booleans()) or depth >= 3:  # a mapping
        for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4)):
            kind = draw(st.sampled_from(["scalar", "scalar", "flow", "block", "empty"]))
            comment = draw(st.sampled_from(["", "  # note", " #x", "#x"]))
            if kind == "scalar":
                lines.append(f"{pad}{key}: {draw(st.sampled_from(TRICKY))}{comment}")
            elif kind == "flow":
                values = draw(st.lists(st.sampled_from(TRICKY), max_size=3))
                lines.append(f"{pad}{key}: {flow(values, draw(st.booleans()))}{comment}")
            elif kind == "empty":
                lines.append(f"{pad}{key}:{comment}")
            elif depth < 3:
                lines.append(f"{pad}{key}:{comment}")
                lines.append(draw(documents(depth + 1, indent + step)))
    else:  # a list
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["scalar", "flow", "map"]))
            if kind == "scalar":
                lines.append(f"{pad}- {draw(st.sampled_from(TRICKY))}")
            elif kind == "flow":
                lines.append(f"{pad}- {flow(draw(st.lists(st.sampled_from(TRICKY), max_size=3)), draw(st.booleans()))}")
            else:
                key, value = draw(st.sampled_from(KEYS)), draw(st.sampled_from(TRICKY))
                lines.append(f"{pad}- {key}: {value}")
                if draw(st.booleans()):
                    lines.append(f"{pad}  {draw(st.sampled_from(KEYS))}: {draw(st.sampled_from(TRICKY))}")
        if draw(st.booleans()):
            lines.insert(draw(st.integers(0, len(lines))), f"{pad}# a comment")
    return "\n".join(lines)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_generated_documents_read_alike_or_are_declined(text):
    check(text)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> list[str]:
    """What `init` writes (local, and openstack offline) and the built-in pipelines."""
    root = tmp_path_factory.mktemp("plain")
    texts = []
    for name, extra in (("local", ()), ("os", ("--provider", "openstack", "--offline"))):
        assert run_cli_in_process("init", str(root / name), *extra, cwd=root).code == 0
        texts.append((root / name / "releasectl.yaml").read_text())
    texts += [Path(path).read_text() for path in builtin_pipelines().values()]
    return texts


def test_what_releasectl_writes_is_read_without_pyyaml(written):
    assert all(check(text) for text in written)


MUTATIONS = ["\t", " ", "  ", "#", ":", ": ", "-", "- ", "'", '"', "{", "}", "[", "]", ",", "&a ", "*a", "!", "|", "\n",
             "\n  ", "0", "x", "é", "\r", "yes", "~", "%", "<<: ", "---\n"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_configs_read_alike_or_are_declined(written, data):
    text = data.draw(st.sampled_from(written))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()):
            text = text[:at] + data.draw(st.sampled_from(MUTATIONS)) + text[at:]
        else:
            text = text[:at] + text[at + data.draw(st.integers(1, 4)):]
    check(text)


@pytest.mark.parametrize("text", [
    "a: 1\na: 2\n",  # duplicate key: PyYAML's error
    "a:\n",  # an empty value
    "a: 010\n", "a: 0x1f\n", "a: 1:30\n", "a: 2024-01-01\n", "a: 1_000\n", "a: .inf\n",  # YAML 1.1 numbers and dates
    "a: b\n  c\n",  # a multi-line scalar
    "a:\n- b\n",  # a list at the key's own indent
    "a: &x 1\nb: *x\n", "a: !!str 1\n", "a: |\n  x\n",
    "a:\tb\n", "a: caf\u00e9\n",
    "a: {b: {c: 1}}\n", "a: [b, [c]]\n", "a: {b: 1,}\n",
    "\n".join(f"{'  ' * i}k{i}:" for i in range(70)) + " 1\n",  # deeper than PyYAML's path allows
], ids=repr)
def test_declined(text):
    assert plain_yaml.read(text, max_nodes=MAX_NODES) is None


def test_node_budget_is_left_to_pyyaml():
    assert plain_yaml.read("a: [1, 2, 3]\n", max_nodes=3) is None
