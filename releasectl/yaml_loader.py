"""PyYAML, bounded: the reader of every YAML document releasectl.plain_yaml does not take (releasectl.safe_yaml
decides), imported only then. Limits and their reasons: releasectl/safe_yaml.py."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from releasectl.errors import ConfigError
from releasectl.safe_yaml import MAX_ALIASES, MAX_DEPTH, MAX_NODES, clip

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}
_IMPLICIT_AS_TEXT = {_TAG + "timestamp"}  # `date: 2024-01-01` stays a string, not a datetime
_MERGE = _TAG + "merge"


def parse_document(text: str, name: str) -> tuple[Any, dict[str, int]]:
    """One YAML document as plain data and the line of every key path; every problem is a ConfigError."""
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
    return data, converter.lines


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


def _short(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


_CONSTRUCTOR = SafeConstructor()
