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

from releasectl import plain_yaml
from releasectl.errors import ConfigError

MAX_BYTES = 1024 * 1024  # 1 MiB
MAX_DEPTH = 64  # nested mappings and lists
MAX_NODES = 50_000  # values after alias expansion (a real config has a few hundred)
MAX_ALIASES = 1_000  # alias uses in one document


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
    """One YAML document as plain data; every problem is a ConfigError at `name:line`. A document in plain
    block style (releasectl.plain_yaml: what `init` writes and the built-in pipelines are) is read without
    PyYAML, whose import costs more start-up CPU than `status` does otherwise; anything else, and every
    error, is PyYAML's (releasectl.yaml_loader)."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"document is larger than {MAX_BYTES // 1024} KiB", location=name)
    plain = plain_yaml.read(text, max_nodes=MAX_NODES)
    if plain is not None:
        return YamlDoc(name, *plain)
    from releasectl.yaml_loader import parse_document

    data, lines = parse_document(text, name)
    return YamlDoc(name, data, lines)


def clip(value: Any, limit: int = 40) -> str:
    """A value for a message: quoted if text, cut to `limit` characters, control characters escaped."""
    text = repr(value) if not isinstance(value, str) else '"' + value + '"'
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 3] + "..."
