"""Release records and the release lock, kept in the cloud's object store (Swift).

Why Swift, and not Nova or Glance metadata:

- A release record is a JSON document of several kilobytes. Nova metadata values stop at 255 bytes, Glance
  properties at a quota of 128 short strings, and neither belongs to an environment rather than to a
  server or an image that comes and goes.
- A Swift object PUT replaces the whole object: a reader sees the old or the new document, never half of
  it. That is `write_record`'s contract, with no client-side locking.
- Swift has one primitive that is atomic on the server: `PUT` with `If-None-Match: *` creates an object
  only if its name is free (else 412). The lock is built on that alone: no read-then-write by the client
  decides who holds it.

Layout, in the container `openstack.lock_container` (default `releasectl`):

    <app>/<env>/records/<key>            one object per record key (keys may contain "/")
    <app>/<env>/lock/<generation>        the lock's state history, generation zero-padded to 12 digits

The lock is a chain of generations. The state of the lock is the object with the highest generation:
`{"token", "owner", "acquired_at", "expires_at", "released"}`. Every change of state (acquire, renew,
take over an expired lease, release, break) creates generation g+1 with `If-None-Match: *`. Exactly one
contender can create g+1, so:

- two runners racing for a free or expired lock: one gets 201, the other 412 and re-reads (LockHeld);
- a renewal creates g+1 from the g it created itself: a 412 means someone else moved the lock on (it was
  broken or taken over), so the holder learns at once that it lost it; a renewal costs one PUT;
- generation names are never reused. Some services never reuse the id of a deleted object (Glance keeps a
  deleted image's id forever), so a fixed object name could be taken only once there; and where names are
  reused, a reader that lags could re-create a deleted generation. Here every state is a new name.

Finding the highest generation: list the prefix, then probe upward with GETs until one is missing (a
listing can lag behind a PUT in Swift). Old generations are deleted `KEEP` generations behind the head, so a
listing would have to lag by more than `KEEP` changes (minutes of renewals) to mislead a reader.

What this needs from the cloud: an `object-store` endpoint in the catalog (or `object_store_endpoint_override`
in clouds.yaml), the right to create one container, and PUT honouring `If-None-Match: *` with 412. Leases
are wall-clock times, so the runners' clocks must agree to within a few seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import replace
from typing import Any, Callable, Mapping

from releasectl.errors import LockHeld, ProviderError
from releasectl.providers.base import Lease, describe_owner, format_utc, this_host

from .swift import ObjectStore

KEEP = 20  # generations kept behind the head
MAX_RACES = 8  # lost races retried by acquire/release/break before giving up
GEN_DIGITS = 12
HOLDER_HINT = "wait for it to finish, or run `releasectl unlock` if that run is gone for good"


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RecordStore:
    """Records of one app and environment as Swift objects."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix  # "<app>/<env>/records/"

    def read(self, key: str) -> str | None:
        data = self.store.get(self.prefix + key)
        return None if data is None else data.decode("utf-8")

    def write(self, key: str, data: str) -> None:
        self.store.put(self.prefix + key, data.encode("utf-8"))

    def list(self, prefix: str) -> list[str]:
        return sorted(name[len(self.prefix):] for name in self.store.list(self.prefix + prefix))

    def create(self, key: str, data: str) -> bool:
        """Create-only (`If-None-Match: *`); False when the key exists. A lost answer is recognised as ours when
        the stored document is exactly `data` (operator intents carry a unique id, so it cannot be another's)."""
        return self.store.create(self.prefix + key, data.encode("utf-8"))

    def delete(self, key: str) -> None:
        """Idempotent: a missing key (404) is success."""
        self.store.delete(self.prefix + key)


State = dict[str, Any]


class LockStore:
    """The release lock of one app and environment: a chain of create-only Swift objects."""

    def __init__(self, store: ObjectStore, prefix: str, key: str, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.prefix = prefix  # "<app>/<env>/lock/"
        self.key = key  # "<app>/<env>", for messages and Lease.key
        self.clock = clock
        self._mine: dict[str, tuple[int, State]] = {}  # token -> (generation, state) this process created last

    # ---- the chain ------------------------------------------------------------------------------------

    def _name(self, gen: int) -> str:
        return f"{self.prefix}{gen:0{GEN_DIGITS}d}"

    def _state(self, gen: int) -> State | None:
        data = self.store.get(self._name(gen))
        if data is None:
            return None
        try:
            state = json.loads(data)
        except ValueError:
            state = None
        return state if isinstance(state, dict) else {"released": True, "corrupt": True}

    def head(self) -> tuple[int, State | None]:
        """(highest generation, its state); (0, None) when the lock was never taken."""
        gens = sorted(
            (int(name[len(self.prefix):]) for name in self.store.list(self.prefix) if name[len(self.prefix):].isdigit()),
            reverse=True,
        )
        gen, state = 0, None
        for candidate in gens[:3]:  # the listed head may have been deleted since the listing was made
            state = self._state(candidate)
            if state is not None:
                gen = candidate
                break
        for _ in range(100000):  # probe past a lagging listing (bounded)
            nxt = self._state(gen + 1)
            if nxt is None:
                break
            gen, state = gen + 1, nxt
        return gen, state

    def _create(self, gen: int, state: State) -> bool:
        ok = self.store.create(self._name(gen), json.dumps(state, sort_keys=True).encode())  # unique: has a token
        if ok and gen > KEEP:
            try:
                self.store.delete(self._name(gen - KEEP))
            except ProviderError:
                pass  # garbage only: a later transition deletes its own
        return ok

    # ---- leases ---------------------------------------------------------------------------------------

    def _lease(self, state: Mapping[str, Any]) -> Lease:
        return Lease(
            key=self.key,
            token=str(state.get("token", "")),
            owner={str(k): str(v) for k, v in dict(state.get("owner") or {}).items()},
            acquired_at=float(state.get("acquired_at", 0.0)),
            expires_at=float(state.get("expires_at", 0.0)),
        )

    @staticmethod
    def _live(state: Mapping[str, Any] | None) -> bool:
        return bool(state) and not state.get("released") and bool(state.get("token"))  # type: ignore[union-attr]

    def dead_reason(self, state: Mapping[str, Any], now: float) -> str | None:
        """Why the holder counts as dead (lease expired, or its process on this host is gone), or None."""
        expires = float(state.get("expires_at", 0.0))
        if expires <= now:
            return f"its lease expired at {format_utc(expires)}"
        owner = state.get("owner") or {}
        pid = str(owner.get("pid", ""))
        if owner.get("host") == this_host() and pid.isdigit() and int(pid) != os.getpid() and not _pid_running(int(pid)):
            return f"its process {pid} on this host is gone"
        return None

    def held_message(self, state: Mapping[str, Any], now: float) -> str:
        expires = float(state.get("expires_at", 0.0))
        return (
            f"{self.key} is locked by {describe_owner(state.get('owner') or {})} since "
            f"{format_utc(float(state.get('acquired_at', 0.0)))}; its lease expires at {format_utc(expires)} "
            f"(in {max(0, round(expires - now))}s)"
        )

    def acquire(self, owner: Mapping[str, str], ttl: float) -> Lease:
        base_owner = {str(k): str(v) for k, v in owner.items() if k != "took_over"}
        for _ in range(MAX_RACES):
            gen, state = self.head()
            now = self.clock()
            new_owner = dict(base_owner)
            if state is not None and self._live(state):
                reason = self.dead_reason(state, now)
                if reason is None:
                    raise LockHeld(self.held_message(state, now), hint=HOLDER_HINT)
                new_owner["took_over"] = f"{describe_owner(state.get('owner') or {})}: {reason}"
            new: State = {
                "token": secrets.token_hex(16),
                "owner": new_owner,
                "acquired_at": now,
                "expires_at": now + ttl,
                "released": False,
            }
            if self._create(gen + 1, new):
                self._mine[new["token"]] = (gen + 1, new)
                return self._lease(new)
            # lost the race for gen+1: look again
        _, state = self.head()
        if state is not None and self._live(state):
            raise LockHeld(self.held_message(state, self.clock()), hint=HOLDER_HINT)
        raise LockHeld(f"{self.key}: could not take the lock: {MAX_RACES} races lost in a row", hint=HOLDER_HINT)

    def _find_mine(self, token: str) -> tuple[int, State | None]:
        """(generation, state) that holds `token` now, from memory or from the cloud; (0, head state) if none."""
        if token in self._mine:
            return self._mine[token]
        gen, state = self.head()
        if state is not None and self._live(state) and state.get("token") == token:
            return gen, state
        return 0, state

    def _lost(self, state: Mapping[str, Any] | None) -> LockHeld:
        who = describe_owner(state.get("owner") or {}) if state is not None and self._live(state) else "nobody"
        return LockHeld(
            f"the lock of {self.key} was broken or taken over; it is now held by {who}",
            hint="this run no longer owns the release; check `releasectl status`",
        )

    def renew(self, lease: Lease, ttl: float) -> Lease:
        gen, state = self._find_mine(lease.token)
        if not gen or state is None:
            raise self._lost(state)
        new = {**state, "expires_at": self.clock() + ttl, "released": False}
        if not self._create(gen + 1, new):  # someone else made gen+1: broken or taken over
            self._mine.pop(lease.token, None)
            raise self._lost(self.head()[1])
        self._mine[lease.token] = (gen + 1, new)
        return self._lease(new)

    def release(self, lease: Lease) -> None:
        for _ in range(MAX_RACES):
            gen, state = self._find_mine(lease.token)
            if not gen or state is None:
                return  # not ours (any more): nothing to do
            self._mine.pop(lease.token, None)
            if self._create(gen + 1, {**state, "released": True, "released_at": self.clock()}):
                return
            # someone moved the lock on: re-read it and give up only what is still ours

    def read(self) -> Lease | None:
        """The current lease, with `dead_reason` set when its holder is known to be gone (as `acquire` sees it)."""
        _, state = self.head()
        if state is None or not self._live(state):
            return None
        lease = self._lease(state)
        reason = self.dead_reason(state, self.clock())
        return lease if reason is None else replace(lease, dead_reason=reason)

    def break_(self) -> None:
        for _ in range(MAX_RACES):
            gen, state = self.head()
            if not self._live(state):
                return
            if self._create(gen + 1, {"released": True, "broken_at": self.clock(), "token": "", "owner": {}}):
                self._mine.clear()
                return
        raise ProviderError(f"{self.key}: could not break the lock: it kept changing")
