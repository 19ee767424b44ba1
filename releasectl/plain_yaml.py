"""A reader for the plain block-style YAML releasectl's own files are written in, without PyYAML.

`releasectl init` writes releasectl.yaml, and the built-in pipelines are, in a small part of YAML: block
mappings and lists indented with spaces, `key: value` on one line, `- item`, comments, one-line flow
collections of scalars (`{percent: 10, hold: 10s}`, `["{python}", "app.py"]`), quoted strings without
escapes, and plain scalars whose meaning is plain (`canary`, `/healthz`, `10s`, `1%`, `2`, `0.5`, `true`).
Importing PyYAML costs more start-up CPU than `releasectl status` does otherwise, so releasectl.safe_yaml
reads such a document here and gives every other one to PyYAML (releasectl.yaml_loader).

`read` returns exactly what the PyYAML path returns (the data and the line of every key path) or None: any
doubt (a tab, a non-ASCII character, an anchor, a tag, a multi-line or escaped scalar, an empty value, a
duplicate key, a number PyYAML would read as octal, hex, sexagesimal or a date, ...) is None, never a guess,
and every error is PyYAML's to word. tests/unit/test_plain_yaml.py holds the two readers side by side.
"""

from __future__ import annotations

import re
from typing import Any

_OUTSIDE = re.compile(r"[^\n\x20-\x7e]")  # tabs, CR, control and non-ASCII characters: PyYAML's reading
_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*):(?: +|$)")
_FLOW_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*): +")
_FLOW_TOKEN = re.compile(r"[A-Za-z0-9_./%+ -]+")
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")  # decimal only: 010 is octal, 1_0 and 1:30 are ints too in YAML 1.1
_FLOAT = re.compile(r"[-+]?[0-9]+\.[0-9]+")
# plain text no resolver matches (a letter, `_` or `/` first; no `:`, `#`, brackets or braces), or a number
# with a unit (`10s`, `5m`, `1%`); anything else plain is PyYAML's to resolve
_TEXT = re.compile(r"[A-Za-z_/][A-Za-z0-9 _./%+,()`'\"!?;=@$&*<>-]*|[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d|%)")
_BOOLS = {word: value for words, value in (("yes Yes YES true True TRUE on On ON", True),
                                           ("no No NO false False FALSE off Off OFF", False)) for word in words.split()}
_NULLS = ("~", "null", "Null", "NULL")
_COMMENT_OR_END = re.compile(r"(?: +#.*)?")
MAX_DEPTH = 64


class _NotPlain(Exception):
    """The document leaves the plain subset: PyYAML reads it."""


def read(text: str, *, max_nodes: int) -> tuple[Any, dict[str, int]] | None:
    """(data, {key path: line}) of a plain block-style document, or None for any other document."""
    if _OUTSIDE.search(text):
        return None
    rows = []
    for number, raw in enumerate(text.split("\n"), 1):
        content = raw.lstrip(" ")
        if content and not content.startswith("#"):
            if content.startswith(("---", "...", "%", "?", "&", "*", "!", "|", ">", "@", "`")):
                return None
            rows.append([number, len(raw) - len(content), content.rstrip(" ")])
    if not rows:
        return None
    reader = _Reader(rows, max_nodes)
    try:
        data = reader.block(rows[0][1], "", 0)
        if reader.pos != len(rows):
            return None
    except _NotPlain:
        return None
    return data, reader.lines


class _Reader:
    def __init__(self, rows: list[list[Any]], max_nodes: int) -> None:
        self.rows = rows
        self.pos = 0
        self.lines: dict[str, int] = {}
        self.budget = max_nodes

    def node(self, path: str, line: int) -> None:
        self.lines.setdefault(path, line)
        self.budget -= 1
        if self.budget < 0:
            raise _NotPlain

    def deeper(self, indent: int) -> bool:
        return self.pos < len(self.rows) and self.rows[self.pos][1] > indent

    def block(self, indent: int, path: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _NotPlain
        content = self.rows[self.pos][2]
        if content == "-" or content.startswith("- "):
            return self.sequence(indent, path, depth)
        return self.mapping(indent, path, depth)

    def mapping(self, indent: int, path: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.node(path, self.rows[self.pos][0])
        while self.pos < len(self.rows) and self.rows[self.pos][1] == indent:
            number, _, content = self.rows[self.pos]
            match = _KEY.match(content)
            if match is None or match.group(1) in out:
                raise _NotPlain
            key, rest = match.group(1), content[match.end():]
            sub = f"{path}.{key}" if path else key
            self.lines[sub] = number
            self.pos += 1
            if not rest or rest.startswith("#"):  # the value is the block below, indented deeper
                if not self.deeper(indent):
                    raise _NotPlain  # an empty value (null), or a list at the key's own indent
                out[key] = self.block(self.rows[self.pos][1], sub, depth + 1)
            else:
                out[key] = self.inline(rest, number, sub)
                if self.deeper(indent):
                    raise _NotPlain  # a scalar continued on the next lines
        return out

    def sequence(self, indent: int, path: str, depth: int) -> list[Any]:
        out: list[Any] = []
        self.node(path, self.rows[self.pos][0])
        while self.pos < len(self.rows) and self.rows[self.pos][1] == indent:
            number, _, content = self.rows[self.pos]
            if not (content == "-" or content.startswith("- ")):
                raise _NotPlain
            rest = content[1:].lstrip(" ")
            item = f"{path}[{len(out)}]"
            if not rest or rest.startswith("#"):
                raise _NotPlain  # the item on the lines below
            if _KEY.match(rest):  # a mapping that starts on the dash's line: its keys line up with the first
                self.rows[self.pos] = [number, indent + len(content) - len(rest), rest]
                out.append(self.mapping(self.rows[self.pos][1], item, depth + 1))
            else:
                self.pos += 1
                out.append(self.inline(rest, number, item))
                if self.deeper(indent):
                    raise _NotPlain
        return out

    def inline(self, text: str, line: int, path: str) -> Any:
        """A value on one line: a quoted or plain scalar, or a flow collection, then at most a comment."""
        if text[0] in "{[":
            value, end = self.flow(text, 0, line, path)
            tail = text[end:]
        elif text[0] in "\"'":
            value, tail = self.quoted(text, line, path)
        else:
            value = self.plain(text.split(" #", 1)[0].rstrip(" "), line, path)
            tail = ""
        if not _COMMENT_OR_END.fullmatch(tail):
            raise _NotPlain
        return value

    def quoted(self, text: str, line: int, path: str) -> tuple[str, str]:
        quote = text[0]
        end = text.find(quote, 1)
        if end < 0 or "\\" in text[1:end] or text[end + 1 : end + 2] == quote:
            raise _NotPlain  # multi-line, escaped, or a doubled quote
        self.node(path, line)
        return text[1:end], text[end + 1 :]

    def plain(self, text: str, line: int, path: str) -> Any:
        self.node(path, line)
        if text in _BOOLS:
            return _BOOLS[text]
        if text in _NULLS:
            return None
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            return float(text)
        if _TEXT.fullmatch(text):
            return text
        raise _NotPlain

    def flow(self, text: str, at: int, line: int, path: str) -> tuple[Any, int]:
        """`{key: scalar, ...}` or `[scalar, ...]` from text[at]; (value, the index after its closing bracket)."""
        self.node(path, line)
        closing = "}" if text[at] == "{" else "]"
        out: Any = {} if closing == "}" else []
        at = _skip(text, at + 1)
        if text[at : at + 1] == closing:
            return out, at + 1
        while True:
            if closing == "}":
                match = _FLOW_KEY.match(text, at)
                if match is None or match.group(1) in out:
                    raise _NotPlain
                key = match.group(1)
                sub = f"{path}.{key}" if path else key
                self.lines[sub] = line
                out[key], at = self.flow_scalar(text, match.end(), line, sub)
            else:
                value, at = self.flow_scalar(text, at, line, f"{path}[{len(out)}]")
                out.append(value)
            at = _skip(text, at)
            if text[at : at + 1] == closing:
                return out, at + 1
            if text[at : at + 1] != ",":
                raise _NotPlain
            at = _skip(text, at + 1)

    def flow_scalar(self, text: str, at: int, line: int, path: str) -> tuple[Any, int]:
        if text[at : at + 1] in ("'", '"'):
            value, tail = self.quoted(text[at:], line, path)
            return value, len(text) - len(tail)
        match = _FLOW_TOKEN.match(text, at)
        if match is None:
            raise _NotPlain  # a nested collection, an empty value, an indicator
        return self.plain(match.group(0).rstrip(" "), line, path), match.end()


def _skip(text: str, at: int) -> int:
    while text[at : at + 1] == " ":
        at += 1
    return at
