"""Hostile-input-safe YAML: the one loader for releasectl.yaml, pipeline files and any YAML record.

PyYAML's SafeLoader still expands aliases without bound (a 1 KiB "billion laughs" took 54 s and 3 GB),
recurses on a recursive alias or deep nesting, keeps the last of two duplicate keys, and turns `!!int abc`
or an unknown tag into a crash. Here every one of those is a ConfigError naming the file and line, found in
milliseconds: the file is at most MAX_BYTES of UTF-8, nesting at most MAX_DEPTH, the expanded document at
most MAX_NODES nodes, and only the plain YAML tags are accepted. The result is plain data (dict, list,
str, int, float, bool, None) plus the line of every key path, for messages like `file:14: rollout.count`.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from releasectl.errors import ConfigError

MAX_BYTES = 1024 * 1024  # 1 MiB
MAX_DEPTH = 64  # nested mappings and lists
MAX_NODES = 50_000  # values after alias expansion (a real config has a few hundred)
MAX_ALIASES = 1_000  # alias uses in one document

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}
_IMPLICIT_AS_TEXT = {_TAG + "timestamp"}  # `date: 2024-01-01` stays a string, not a datetime
_MERGE = _TAG + "merge"


class YamlDoc:
    """Parsed data plus `lines`: key path (`rollout.count`, `steps[2].weight`) -> 1-based line."""

    def __init__(self, name: str, data: Any, lines: dict[str, int]) -> None:
        self.name = name
        self.data = data
        self.lines = lines

    def line_of(self, path: str) -> int | None:
        probe = path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return self.lines.get("")

    def where(self, path: str) -> str:
        line = self.line_of(path)
        return f"{self.name}:{line}" if line else self.name

    def error(self, path: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{path}: {message}" if path else message, location=self.where(path), hint=hint)


def read_text(path: Path, *, name: str | None = None, max_bytes: int = MAX_BYTES) -> str:
    """The file's text: at most max_bytes, strict UTF-8 (a BOM is allowed), else a ConfigError."""
    name = name or path.name
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: is a folder, not a file")
        if not stat.S_ISREG(mode):  # a FIFO would block, a device never ends
            raise ConfigError(f"{path}: is not a regular file")
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise ConfigError(
            f"file is larger than {max_bytes // 1024} KiB", location=name, hint="a releasectl file is a few KiB of YAML"
        )
    return decode(raw, name)


def decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            location=f"{name}:{line}",
            hint="save the file as UTF-8",
        ) from None


def load(path: Path, *, name: str | None = None) -> YamlDoc:
    name = name or path.name
    return parse(read_text(path, name=name), name)


def parse(text: str, name: str) -> YamlDoc:
    """One YAML document as plain data; every problem is a ConfigError at `name:line`."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"document is larger than {MAX_BYTES // 1024} KiB", location=name)
    loader = None
    try:
        loader = _BoundedLoader(text, name)
        node = loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1 if isinstance(exc.position, int) else 1
        raise ConfigError(
            f"not valid YAML: character U+{ord(exc.character) if isinstance(exc.character, str) else exc.character:04X} is not allowed", location=f"{name}:{line}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"not valid YAML: {problem}", location=where) from None
    except RecursionError:  # belt and braces: MAX_DEPTH stops it long before
        raise ConfigError(f"nested more than {MAX_DEPTH} levels deep", location=name) from None
    finally:
        if loader is not None:
            loader.dispose()
    converter = _Converter(name)
    data = converter.convert(node, "", 0) if node is not None else None
    return YamlDoc(name, data, converter.lines)


try:  # libyaml's parser gives the events 15x faster; the composer stays PyYAML's, in Python, bounded here
    from yaml._yaml import CParser
    from yaml.composer import Composer
    from yaml.resolver import Resolver

    class _Parser(Composer, CParser, Resolver):  # type: ignore[misc]
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            Resolver.__init__(self)

except ImportError:  # PyYAML without libyaml

    class _Parser(yaml.SafeLoader):  # type: ignore[no-redef]
        pass


class _BoundedLoader(_Parser):
    """A composer that refuses deep nesting and too many aliases while it reads."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self._name = name
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D401 (PyYAML hook)
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"more than {MAX_ALIASES} YAML aliases", location=f"{self._name}:{mark.line + 1}"
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"nested more than {MAX_DEPTH} levels deep", location=f"{self._name}:{mark.line + 1}"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Converter:
    """Node graph -> plain data, with a budget on expanded nodes, cycle detection and plain tags only."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: dict[str, int] = {}
        self.budget = MAX_NODES
        self.active: set[int] = set()  # nodes being converted: seeing one again is a recursive alias
        self.done: dict[int, tuple[Any, int]] = {}  # node -> (value, expanded size), for aliases met again

    def fail(self, node: yaml.Node, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, location=f"{self.name}:{node.start_mark.line + 1}", hint=hint)

    def convert(self, node: yaml.Node, path: str, depth: int) -> Any:
        if id(node) in self.done:  # an alias of a finished node: charge its whole size without walking it
            value, size = self.done[id(node)]
            self.charge(node, size)
            return value  # shared, as PyYAML shares it: treat the result as read-only
        start = self.budget
        self.charge(node, 1)
        value = self._convert(node, path, depth)
        self.done[id(node)] = (value, start - self.budget)
        return value

    def charge(self, node: yaml.Node, size: int) -> None:
        self.budget -= size
        if self.budget < 0:
            raise self.fail(
                node, f"expands to more than {MAX_NODES} values (a YAML alias bomb?)", hint="use fewer aliases"
            )

    def _convert(self, node: yaml.Node, path: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nested more than {MAX_DEPTH} levels deep (through aliases)")
        if id(node) in self.active:
            raise self.fail(node, "a YAML alias refers to a node that contains it (recursive alias)")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _TAG + "seq":
                    raise self.fail(node, f"YAML tag {_short(node.tag)} is not allowed", hint="use a plain list")
                return [self.convert(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node.value)]
            if node.tag != _TAG + "map":
                raise self.fail(node, f"YAML tag {_short(node.tag)} is not allowed", hint="use a plain mapping")
            return self.mapping(node, path, depth)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:  # `<<: *base`: keys written here win over merged ones
                for source in value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]:
                    value = self.convert(source, path, depth + 1)
                    if not isinstance(value, dict):
                        raise self.fail(source, "`<<` merges only mappings")
                    for key, item in value.items():
                        merged.setdefault(key, item)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "a key must be a plain name, not a list or mapping")
            key = str(key_node.value)
            sub = f"{path}.{key}" if path else key
            if key in out:
                raise ConfigError(
                    f"{sub}: duplicate key (first at line {self.lines.get(sub, '?')})",
                    location=f"{self.name}:{key_node.start_mark.line + 1}",
                    hint="keep one of them",
                )
            self.lines[sub] = key_node.start_mark.line + 1
            out[key] = self.convert(value_node, sub, depth + 1)
        return {**merged, **out}

    def scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        tag = node.tag
        if tag in _IMPLICIT_AS_TEXT and not node.style:
            return node.value
        if tag == "!" or tag == _TAG + "str":
            return node.value
        if tag not in _SCALAR_TAGS:
            raise self.fail(
                node,
                f"{path + ': ' if path else ''}YAML tag {_short(tag)} is not allowed",
                hint="only plain values: strings, numbers, true/false, null, lists and mappings",
            )
        try:
            return SafeConstructor.yaml_constructors[tag](_CONSTRUCTOR, node)
        except (ValueError, TypeError, KeyError, OverflowError, yaml.YAMLError):
            raise self.fail(node, f"{path + ': ' if path else ''}{clip(node.value)} is not a valid {_short(tag)}") from None


def clip(value: Any, limit: int = 40) -> str:
    """A value for a message: quoted if text, cut to `limit` characters, control characters escaped."""
    text = repr(value) if not isinstance(value, str) else '"' + value + '"'
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


_CONSTRUCTOR = SafeConstructor()
