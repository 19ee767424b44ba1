"""Small file helpers shared by the local provider's stores: atomic writes, JSON, flock, safe names."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import stat
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from releasectl.errors import DamagedState, ProviderError

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
    import secrets  # here, not at the top: read-only commands write nothing (issue 12)

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


MAX_STATE_BYTES = 1 << 20  # a state file is a few KiB; anything past 1 MiB is damage, never parsed

# Field name -> accepted types (None in the tuple: the key may be missing or null).
Schema = Mapping[str, tuple]


def read_text(path: Path, *, max_bytes: int = MAX_STATE_BYTES) -> str | None:
    """The file's text, or None when it does not exist. Every state file of the local provider is read
    through here (or `read_json`): too large, not UTF-8, not a regular file or unreadable is DamagedState
    naming the file and the damage."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DamagedState(str(path), f"cannot be opened ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DamagedState(str(path), "is not a regular file")
        if st.st_size > max_bytes:
            raise DamagedState(str(path), f"is {st.st_size} bytes, more than the {max_bytes} a state file may have")
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0 and (chunk := os.read(fd, min(remaining, 1 << 16))):
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise DamagedState(str(path), f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > max_bytes:
        raise DamagedState(str(path), f"grew past the {max_bytes} bytes a state file may have")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedState(str(path), f"is not UTF-8 text (byte {exc.start})") from None


def read_json(path: Path, schema: Schema | None = None, *, kind: type = dict) -> Any | None:
    """The parsed document, or None when the file does not exist. Empty, truncated or garbage JSON, the
    wrong top-level type, or a field of the wrong type (per `schema`) is DamagedState."""
    text = read_text(path)
    if text is None:
        return None
    if not text.strip():
        raise DamagedState(str(path), "is empty")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise DamagedState(str(path), "is nested too deeply") from None
    except ValueError as exc:
        raise DamagedState(str(path), f"is not valid JSON ({exc})") from None
    if not isinstance(doc, kind):
        raise DamagedState(str(path), f"holds a JSON {_json_type(doc)}, not a JSON {_json_type(kind())}")
    if schema is not None:
        check_fields(path, doc, schema)
    return doc


def check_fields(path: Path, doc: Mapping[str, Any], schema: Schema) -> None:
    """Each field of `schema` has one of its types (bool is never taken for int or float)."""
    for key, types in schema.items():
        value = doc.get(key)
        kind = type(value)
        if kind in types and (kind is not float or math.isfinite(value)):
            continue  # the common case, exact JSON types (every pass reads each server's record)
        if value is None:
            if None in types:
                continue
            raise DamagedState(str(path), f"has no {key!r}")
        wanted = tuple(t for t in types if t is not None)
        if isinstance(value, bool) and bool not in wanted:
            ok = False
        else:
            ok = isinstance(value, wanted)
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if not ok:
            names = " or ".join(_json_type(t()) for t in wanted)
            raise DamagedState(str(path), f"field {key!r} is a JSON {_json_type(value)}, not a {names}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", dict: "object", list: "array", type(None): "null"}.get(type(value), type(value).__name__)


def quarantine(path: Path, vault: Path) -> Path:
    """Move a damaged file or folder aside into `vault` (never delete it: someone may want to read it).
    Returns where it went."""
    import secrets

    vault.mkdir(parents=True, exist_ok=True)
    dest = vault / f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}-{path.name}"
    os.replace(path, dest)
    fsync_dir(path.parent)
    fsync_dir(vault)
    return dest


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
