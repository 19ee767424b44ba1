"""Small file helpers shared by the local provider's stores: atomic writes, JSON, flock, safe names."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any, Iterator

from releasectl.errors import ProviderError

_SAFE = re.compile(r"[A-Za-z0-9_-]")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: str | bytes, *, mode: int = 0o644, exclusive: bool = False) -> bool:
    """Write to a temp file in the same folder, fsync it, os.replace it into place, fsync the folder.

    A reader sees the old content or the new, never half. Temp names start with '.tmp-' so that folder
    listings can skip them. `exclusive` is create-only: the temp file is hard-linked into place, and link(2)
    fails instead of replacing, so of two writers exactly one wins; False means the path existed.
    """
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if not exclusive:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                tmp.unlink()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
    return True


def write_json(path: Path, obj: Any, *, mode: int = 0o644) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", mode=mode)


def read_json(path: Path) -> Any | None:
    """The parsed document, or None when the file does not exist. A corrupt file is a ProviderError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProviderError(f"{path} is not valid JSON: {exc}") from exc


@contextlib.contextmanager
def flocked(path: Path) -> Iterator[None]:
    """Hold an exclusive fcntl.flock on `path` (created if needed) for the duration of the block.

    The kernel drops the lock when the process dies, so a crashed holder never wedges it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def encode_name(text: str) -> str:
    """Map any string to one safe file name: [A-Za-z0-9_-] kept, every other byte as %XX.

    The result never contains '/', never starts with '.', and decodes back with `decode_name`.
    """
    out = []
    for ch in text:
        if _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode())
    name = "".join(out)
    if not name:
        name = "%"  # the empty string; '%' alone never comes out of a non-empty text
    if len(name.encode()) > 240:
        raise ProviderError(f"name too long to store as a file: {text[:60]!r}...")
    return name


def decode_name(name: str) -> str:
    if name == "%":
        return ""
    raw = bytearray()
    i = 0
    while i < len(name):
        if name[i] == "%":
            raw.append(int(name[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(name[i].encode())
            i += 1
    return raw.decode()
