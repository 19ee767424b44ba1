"""Durable records and the release lock of one app and environment, as files.

    envs/<env>/records/<key, %-encoded>.rec   one document per key, written atomically (temp, fsync, replace)
    envs/<env>/lock.json                      the lock's owner record: token, owner, acquired_at, expires_at
    envs/<env>/lock.flock                     flock'ed only around the read-check-write of lock.json

The flock is never held while a release runs: the lease in lock.json is the lock, and it expires unless
renewed. A holder is dead when its lease expired, or when it ran on this host and its PID is gone (or was
reused: the start time of the acquiring process is kept in the record when it is the holder itself).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping

from releasectl.errors import DamagedState, LockHeld, ProviderError
from releasectl.logs import Logger
from releasectl.providers.base import Lease, describe_owner, format_utc, this_host

from . import procs
from .files import (
    atomic_write,
    decode_name,
    encode_name,
    flocked,
    fsync_dir,
    quarantine,
    read_json,
    read_text,
    write_json,
)

log = Logger("releasectl.providers.local")

SUFFIX = ".rec"
LOCK_SCHEMA = {
    "token": (str,),
    "owner": (dict, None),
    "acquired_at": (int, float, None),
    "expires_at": (int, float, None),
    "pid_start": (int, None),
}


class RecordStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not isinstance(key, str):
            raise ProviderError(f"record keys are strings, not {type(key).__name__}")
        return self.root / (encode_name(key) + SUFFIX)

    def read(self, key: str) -> str | None:
        """The record's text; DamagedState (naming the file) when it is not UTF-8 or too large."""
        return read_text(self._path(key))

    def quarantine(self, key: str, vault: Path) -> str | None:
        """Move the record's file aside into `vault`; where it went, or None when there was none."""
        path = self._path(key)
        if not path.exists():
            return None
        return str(quarantine(path, vault))

    def write(self, key: str, data: str) -> None:
        atomic_write(self._path(key), data)

    def create(self, key: str, data: str) -> bool:
        """Create-only (O_EXCL temp file, then link(2), which refuses to replace): False if the key exists."""
        return atomic_write(self._path(key), data, exclusive=True)

    def delete(self, key: str) -> None:
        """Idempotent: a missing key is success."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.root)

    def list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for entry in self.root.iterdir():
            if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                try:
                    key = decode_name(entry.name[: -len(SUFFIX)])
                except (ValueError, UnicodeDecodeError):
                    continue  # not a name releasectl wrote
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)


class LockStore:
    def __init__(self, root: Path, key: str, *, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.key = key
        self.clock = clock
        self.path = root / "lock.json"
        self.flock_path = root / "lock.flock"

    def damage(self) -> DamagedState | None:
        """What is wrong with lock.json, or None (missing or sound)."""
        try:
            read_json(self.path, LOCK_SCHEMA)
        except DamagedState as exc:
            return exc
        return None

    def _read(self) -> dict | None:
        try:
            data = read_json(self.path, LOCK_SCHEMA)
        except DamagedState as exc:
            log.info("%s; it holds nothing and the next acquire rewrites it", exc)
            return None  # a corrupt lock record holds nothing; the next acquire rewrites it
        if data is None or not data.get("token"):
            return None
        owner = data.get("owner") or {}
        if not all(isinstance(v, (str, int, float)) for v in owner.values()):
            log.warning("%s has an owner with odd values; it holds nothing", self.path)
            return None
        return data

    def _lease(self, rec: dict) -> Lease:
        return Lease(
            key=self.key,
            token=str(rec["token"]),
            owner={str(k): str(v) for k, v in dict(rec.get("owner", {})).items()},
            acquired_at=float(rec.get("acquired_at", 0.0)),
            expires_at=float(rec.get("expires_at", 0.0)),
        )

    def _dead_reason(self, rec: dict, now: float) -> str | None:
        """Why the holder counts as gone, or None when it may still be alive."""
        expires = float(rec.get("expires_at", 0.0))
        if expires <= now:
            return f"its lease expired at {format_utc(expires)}"
        owner = rec.get("owner", {})
        pid_text = str(owner.get("pid", ""))
        if owner.get("host") == this_host() and pid_text.isdigit():
            pid = int(pid_text)
            if not procs.pid_is_running(pid):
                return f"its process {pid} on this host is gone"
            if rec.get("pid_start") is not None and procs.start_time(pid) != rec["pid_start"]:
                return f"its process {pid} on this host is gone (the PID was reused)"
        return None

    def _held_message(self, rec: dict, now: float) -> str:
        expires = float(rec.get("expires_at", 0.0))
        return (
            f"{self.key} is locked by {describe_owner(rec.get('owner', {}))} since "
            f"{format_utc(float(rec.get('acquired_at', 0.0)))}; its lease expires at {format_utc(expires)} "
            f"(in {max(0, round(expires - now))}s)"
        )

    def acquire(self, owner: Mapping[str, str], ttl: float) -> Lease:
        import secrets  # here: read-only commands never take the lock

        with flocked(self.flock_path):
            now = self.clock()
            current = self._read()
            new_owner = {str(k): str(v) for k, v in owner.items()}
            new_owner.pop("took_over", None)
            if current is not None:
                reason = self._dead_reason(current, now)
                if reason is None:
                    raise LockHeld(
                        self._held_message(current, now),
                        hint="wait for it to finish, or run `releasectl unlock` if that run is gone for good",
                    )
                new_owner["took_over"] = f"{describe_owner(current.get('owner', {}))}: {reason}"
            rec = {
                "token": secrets.token_hex(16),
                "owner": new_owner,
                "acquired_at": now,
                "expires_at": now + ttl,
            }
            if new_owner.get("pid") == str(os.getpid()) and new_owner.get("host") == this_host():
                rec["pid_start"] = procs.start_time(os.getpid())
            write_json(self.path, rec)
            return self._lease(rec)

    def renew(self, lease: Lease, ttl: float) -> Lease:
        with flocked(self.flock_path):
            now = self.clock()
            current = self._read()
            if current is None or current.get("token") != lease.token:
                who = describe_owner(current.get("owner", {})) if current else "nobody"
                raise LockHeld(
                    f"the lock of {self.key} was broken or taken over; it is now held by {who}",
                    hint="this run no longer owns the release; check `releasectl status`",
                )
            current["expires_at"] = now + ttl
            write_json(self.path, current)
            return self._lease(current)

    def release(self, lease: Lease) -> None:
        with flocked(self.flock_path):
            current = self._read()
            if current is not None and current.get("token") == lease.token:
                self.path.unlink()
                fsync_dir(self.root)

    def read(self) -> Lease | None:
        current = self._read()
        if current is None:
            return None
        lease = self._lease(current)
        reason = self._dead_reason(current, self.clock())
        return lease if reason is None else replace(lease, dead_reason=reason)

    def break_(self) -> None:
        with flocked(self.flock_path):
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
                fsync_dir(self.root)
