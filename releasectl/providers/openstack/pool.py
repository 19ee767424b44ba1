"""The operator's Octavia pool of one environment: its load balancer, its health monitor, and its members.

Every write under a load balancer flips it to PENDING_UPDATE, and Octavia answers 409 ("immutable") to
any other write until it is ACTIVE again. So each write here waits for the LB to be ACTIVE before and
after; a 409 "immutable" is waited out and replayed (bounded); an LB in ERROR (or being deleted) raises
ResourceFailure at once, because waiting cannot fix it.

Weights change with one batch call per `set_weights`: `PUT /pools/{id}/members` with the complete desired
state of every member, from a fresh read of the pool. Octavia parses each entry as a create object, so a
field left out falls back to its create default (weight 1!), and a member left out is deleted.

Ownership: a member releasectl adds carries the Octavia tags `releasectl`, `releasectl_app=<app>` and
`releasectl_env=<env>`, and a name `releasectl/<app>/<env>/<server>`. `Member.app`/`env` come from the tags
(from the name when the tags are missing); a member with neither is not releasectl's (app and env None), and
releasectl never changes it. Several apps may share one pool this way.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Callable, Mapping

from releasectl.errors import Conflict, ProviderError, ResourceFailure, UsageError
from releasectl.providers.base import HealthCheck, LBState, Member
from releasectl.wait import Pace

from .http import create_then_find
from .neutron import looks_like_id
from .octavia import Octavia
from .status import LB_FAILED, LB_READY, Poll, lb_state, member_admin, member_health, wait_for_status

log = logging.getLogger("releasectl.providers.openstack.pool")

MAX_CONFLICTS = 10  # 409s waited out per write
LB_TRUST = 0.5  # seconds an ACTIVE LB seen by this run vouches for itself (the next look, the next write)
# seconds the members an observer just read serve as the base of our next batch PUT: shorter than any
# Octavia update takes to settle, so a change by someone else after that read is still PENDING at our PUT,
# which Octavia then refuses (409) and we replay from a fresh read
MEMBERS_FRESH = 0.25
POOL_FRESH = 30.0  # seconds `state` trusts the pool it last read (its listeners, its LB) before reading it again
MEMBER_FIELDS = ("name", "weight", "admin_state_up", "backup", "monitor_address", "monitor_port", "subnet_id", "tags")
OWNER_TAG = "releasectl"
APP_TAG = "releasectl_app="
ENV_TAG = "releasectl_env="
NAME_PREFIX = "releasectl/"
MAX_NAME = 255
# What Octavia accepts as a monitor `url_path`: an RFC 3986 path (and query), so no space or control character.
URL_PATH = re.compile(r"^/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*$")


def owner_tags(app: str, env: str) -> list[str]:
    return [OWNER_TAG, APP_TAG + app, ENV_TAG + env]


def member_name(app: str, env: str, server_name: str) -> str:
    return f"{NAME_PREFIX}{app}/{env}/{server_name}"[:MAX_NAME]


def owner_of(m: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(app, env) from the member's tags, else from its name prefix; (None, None) when it is not ours."""
    tags = [t for t in (m.get("tags") or []) if isinstance(t, str)]
    app = next((t[len(APP_TAG):] for t in tags if t.startswith(APP_TAG)), None)
    env = next((t[len(ENV_TAG):] for t in tags if t.startswith(ENV_TAG)), None)
    if OWNER_TAG in tags and app and env:
        return app, env
    name = str(m.get("name") or "")
    if name.startswith(NAME_PREFIX):
        parts = name[len(NAME_PREFIX):].split("/", 2)
        if len(parts) == 3 and parts[0] and parts[1]:
            return parts[0], parts[1]
    return None, None


def to_member(m: Mapping[str, Any]) -> Member:
    weight = int(m.get("weight", 1))
    app, env = owner_of(m)
    return Member(
        id=str(m["id"]),
        name=str(m.get("name") or ""),
        address=str(m.get("address")),
        port=int(m.get("protocol_port", 0)),
        weight=weight,
        admin=member_admin(bool(m.get("admin_state_up", True)), weight),
        health=member_health(m.get("operating_status")),
        health_detail=f"{m.get('operating_status')} in Octavia" if m.get("operating_status") else "",
        sessions=None,
        app=app,
        env=env,
    )


def _busy(exc: Conflict) -> bool:
    text = str(exc).lower()
    return "immutable" in text or "pending" in text


class Pool:
    """The configured pool of one environment: checks, waits, and member changes."""

    def __init__(
        self,
        api: Octavia,
        ref: str,
        *,
        app: str,
        env: str,
        health: HealthCheck,
        create_monitor: bool,
        timeout: float,
        poll: Poll,
    ) -> None:
        self.api = api
        self.ref = ref
        self.app = app
        self.env = env
        self.health = health
        self.create_monitor = create_monitor
        self.monitor_name = f"releasectl-{app}-{env}"
        self.timeout = timeout
        self.poll = poll
        self._pool: dict[str, Any] | None = None
        self._pool_read = 0.0  # when _pool was read (poll clock)
        self._active: tuple[float, dict[str, Any]] | None = None  # the LB last seen ACTIVE by us, and when
        self._settled = False  # _active comes from the wait after our own write (no other look since)
        self._read_back: tuple[float, list[dict[str, Any]]] | None = None  # members read after our write, and when
        self._looked: tuple[float, list[dict[str, Any]]] | None = None  # members an observer read, and when
        self._looked_up = float("-inf")  # when `state` last looked the pool up (ensure may take that look as its own)
        self._pace = Pace()  # how long our last write took to settle: the next wait after a write follows it

    # ---- the pool and its load balancer ---------------------------------------------------------------

    def pool(self, refresh: bool = False) -> dict[str, Any]:
        if self._pool is None or refresh:
            self._keep(self._find())
        assert self._pool is not None
        return self._pool

    def _keep(self, pool: dict[str, Any]) -> None:
        self._pool = pool
        self._pool_read = self.poll.clock.monotonic()

    @property
    def id(self) -> str:
        return str(self.pool()["id"])

    @property
    def lb_id(self) -> str:
        lbs = self.pool().get("loadbalancers") or []
        if not lbs:
            raise ProviderError(f"pool {self.ref!r} belongs to no load balancer")
        return str(lbs[0]["id"])

    def _lookup(self) -> dict[str, Any] | None:
        if looks_like_id(self.ref):
            pool = self.api.get_pool(self.ref)
            if pool is not None:
                return pool
        pools = self.api.find_pools(self.ref)
        if len(pools) > 1:
            raise UsageError(f"several Octavia pools are named {self.ref!r}", hint="set openstack.pool to the pool's id")
        return pools[0] if pools else None

    def _find(self) -> dict[str, Any]:
        pool = self._lookup()
        if pool is None:
            raise UsageError(
                f"no Octavia pool {self.ref!r} in this project",
                hint="create the load balancer, listener and pool first (releasectl uses an existing pool), "
                "or fix openstack.pool",
            )
        return pool

    def state(self) -> LBState:
        """The load balancer as it is now (read-only): one GET of the LB per look; the pool itself (its
        listeners and LB) is read again when POOL_FRESH has passed or its LB is not there."""
        fresh = self._pool is not None and self.poll.clock.monotonic() - self._pool_read < POOL_FRESH
        if fresh and self._settled and self._trusted():
            self._settled = False  # the look right after our own write: the wait just saw it ACTIVE
            assert self._active is not None
            return lb_state(self._active[1], self._pool, self.ref)
        self._settled = False
        pool, lb = self._pool_and_lb(self._pool if fresh else None)
        if lb is not None and str(lb.get("provisioning_status", "")).upper() == LB_READY:
            self._active = (self.poll.clock.monotonic(), dict(lb))
        if lb is None and fresh:
            pool, lb = self._pool_and_lb(None)
        return lb_state(lb, pool, self.ref)

    def _pool_and_lb(self, pool: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The LB of `pool`, or of the pool looked up again (and kept) when `pool` is None."""
        if pool is None:
            pool = self._lookup()
            if pool is not None:
                self._keep(pool)
                self._looked_up = self._pool_read
        lbs = (pool or {}).get("loadbalancers") or []
        return pool, (self.api.get_lb(str(lbs[0]["id"])) if lbs else None)

    def wait_active(self, why: str = "", just_changed: bool = False, pace: Pace | None = None) -> dict[str, Any]:
        """Wait until the LB is ACTIVE; an LB in ERROR or being deleted fails at once. `just_changed`: right
        after our write, when it cannot be ACTIVE yet (the first read waits the first poll). `pace`: how long
        our last write took to settle (the wait follows it)."""
        lb_id = self.lb_id

        def failed(lb: Mapping[str, Any]) -> ResourceFailure | None:
            status = str(lb.get("provisioning_status", "")).upper()
            if status not in LB_FAILED:
                return None
            return ResourceFailure(
                f"load balancer {lb.get('name') or lb_id} is {status}: releasectl cannot change pool {self.ref!r}",
                hint=f"an operator must repair it (e.g. `openstack loadbalancer failover {lb_id}`); "
                "then run `releasectl rollout --resume`",
            )

        lb = wait_for_status(
            lambda: self.api.get_lb(lb_id),
            what=f"load balancer {lb_id} to be ACTIVE" + (f" ({why})" if why else ""),
            timeout=self.timeout, poll=self.poll,
            done=lambda lb: str(lb.get("provisioning_status", "")).upper() == LB_READY,
            failed=failed,
            missing=lambda: ResourceFailure(f"load balancer {lb_id} of pool {self.ref!r} is gone"),
            just_changed=just_changed, pace=pace,
        )
        assert lb is not None
        self._active = (self.poll.clock.monotonic(), dict(lb))
        return dict(lb)

    def _trusted(self) -> bool:
        return self._active is not None and self.poll.clock.monotonic() - self._active[0] < LB_TRUST

    def write(self, what: str, call: Callable[[], Any]) -> Any:
        """Run one write, then wait for ACTIVE; a 409 'immutable' (the LB busy, or in ERROR) is waited out
        (bounded) by a wait for ACTIVE, which fails at once on an LB in ERROR."""
        for attempt in range(MAX_CONFLICTS):
            if attempt and not self._trusted():  # the first try needs no look: an LB that is not ACTIVE answers 409
                self.wait_active(f"before {what}")
            before = self._active
            self._active, self._settled, self._read_back = None, False, None
            try:
                result = call()
            except Conflict as exc:
                if not _busy(exc):
                    raise
                log.debug("%s: load balancer busy, waiting: %s", what, exc)
                self.poll.clock.sleep(self.poll.interval)
                continue
            finally:
                self._looked = None  # an observer's read is no base after a write (ours, or one tried)
            if result is False:  # nothing was written (the pool was as wanted): the LB is as it was seen
                self._active = before
                return result
            self.wait_active(f"after {what}", just_changed=True, pace=self._pace)
            self._settled = True
            return result
        raise ProviderError(f"{what}: the load balancer stayed busy through {MAX_CONFLICTS} attempts")

    def ensure(self) -> None:
        """The pool exists, its LB is usable, and a health monitor checks its members."""
        looked, self._looked_up = self._looked_up, float("-inf")
        recent = self._pool is not None and self.poll.clock.monotonic() - looked < LB_TRUST
        pool = self.pool(refresh=not recent)  # looked up a moment ago (by `state`, for the same command): not again
        if not self._trusted():
            self.wait_active("checking the pool")
        self._settled = True  # the look right after this check trusts it, as after our own write
        if pool.get("healthmonitor_id"):
            return
        if not self.create_monitor:
            raise UsageError(
                f"Octavia pool {pool.get('name') or self.id} has no health monitor: without one every member is "
                "NO_MONITOR and releasectl cannot tell a healthy new version from a broken one",
                hint="add an HTTP health monitor to the pool, or set `openstack.create_monitor: true` to let "
                "releasectl create one from the `health:` settings",
            )
        self._create_monitor(pool)

    def _create_monitor(self, pool: dict[str, Any]) -> None:
        h = self.health
        protocol = str(pool.get("protocol", "HTTP")).upper()
        delay = max(1, math.ceil(h.interval))
        body: dict[str, Any] = {
            "pool_id": self.id,
            "name": self.monitor_name,
            "delay": delay,
            "timeout": min(delay, max(1, math.ceil(h.timeout))),
            "max_retries": min(10, max(1, h.rise)),
            "max_retries_down": min(10, max(1, h.fall)),
            "admin_state_up": True,
        }
        if protocol in ("HTTP", "HTTPS", "TERMINATED_HTTPS", "PROXY"):
            if not URL_PATH.fullmatch(h.path):
                raise UsageError(
                    f"health.path {h.path!r} is not a URL path Octavia accepts for a health monitor",
                    hint="use a path such as /healthz: no spaces or control characters (escape them as %20)",
                )
            body.update(type="HTTPS" if protocol == "HTTPS" else "HTTP", http_method="GET", url_path=h.path, expected_codes=str(h.expected_status))
        else:
            body["type"] = "TCP"

        def find() -> str | None:
            return self.pool(refresh=True).get("healthmonitor_id")

        create_then_find(
            lambda: self.write("creating the health monitor", lambda: self.api.call("POST", "/healthmonitors", json={"healthmonitor": body})),
            find, what=f"health monitor {self.monitor_name}", on_conflict="find",
            settle=lambda: self.wait_active("after an ambiguous monitor create"),
        )
        log.info("created health monitor %s on pool %s", self.monitor_name, self.ref)
        self.pool(refresh=True)

    def endpoint(self) -> str | None:
        pool = self.pool()
        listeners = pool.get("listeners") or []
        lb = self.api.get_lb(self.lb_id)
        if lb is None or not lb.get("vip_address") or not listeners:
            return None
        listener = self.api.get_listener(str(listeners[0]["id"]))
        if listener is None:
            return None
        scheme = "https" if str(listener.get("protocol", "")).upper() in ("HTTPS", "TERMINATED_HTTPS") else "http"
        host = lb["vip_address"]
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{listener.get('protocol_port')}"

    # ---- members -------------------------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        return list(self.api.iter_members(self.id))

    def look(self) -> list[dict[str, Any]]:
        """The members for an observer (the engine's pass): the list our last write read back once the LB
        settled, when that was less than LB_TRUST ago and nobody looked since (as `state` trusts the LB
        then); else a fresh read."""
        kept, self._read_back = self._read_back, None
        if kept is not None and self.poll.clock.monotonic() - kept[0] < LB_TRUST:
            return kept[1]
        members = self.members()
        self._looked = (self.poll.clock.monotonic(), members)
        return members

    def _base(self) -> list[dict[str, Any]]:
        """The members a batch PUT starts from: an observer's read of a moment ago (used once: a replay after
        a 409 reads again), else a fresh read."""
        looked, self._looked = self._looked, None
        if looked is not None and self.poll.clock.monotonic() - looked[0] < MEMBERS_FRESH:
            return [dict(m) for m in looked[1]]
        return self.members()

    def _kept_members(self) -> list[dict[str, Any]]:
        """A read right after our write settled, kept for the next `look`."""
        members = self.members()
        self._read_back = (self.poll.clock.monotonic(), members)
        return members

    def find_member(self, address: str, port: int) -> dict[str, Any] | None:
        for m in self.members():
            if m.get("address") == address and int(m.get("protocol_port", 0)) == port:
                return m
        return None

    def add(self, address: str, port: int, server_name: str, subnet_id: str | None) -> dict[str, Any]:
        """Add at weight 0, tagged as ours; adopt an existing member on the same address and port (idempotent):
        the address is our server's, so the member is ours, and gets our tags if it lacks them."""
        tags = owner_tags(self.app, self.env)
        existing = self.find_member(address, port)
        if existing is not None:
            return self._claim(existing, tags)
        name = member_name(self.app, self.env, server_name)
        body: dict[str, Any] = {"address": address, "protocol_port": port, "weight": 0, "name": name,
                                "admin_state_up": True, "tags": tags}
        if subnet_id:
            body["subnet_id"] = subnet_id
        path = f"/pools/{self.id}/members"

        def create() -> dict[str, Any]:
            created = self.write(f"adding member {name}", lambda: self.api.call("POST", path, json={"member": body}).json()["member"])
            return self.api.get_member(self.id, created["id"]) or created

        # A duplicate (409 "already using ip") or an unanswered create: adopt what is there.
        return create_then_find(
            create, lambda: self.find_member(address, port), what=f"member {name} ({address}:{port})",
            on_conflict="find", settle=lambda: self.wait_active("after an ambiguous member create"),
        )

    def _claim(self, member: dict[str, Any], tags: list[str]) -> dict[str, Any]:
        have = list(member.get("tags") or [])
        if owner_of(member) == (self.app, self.env) and all(t in have for t in tags):
            return member
        path = f"/pools/{self.id}/members/{member['id']}"
        merged = have + [t for t in tags if t not in have]
        self.write(f"tagging member {member.get('name') or member['id']}", lambda: self.api.call("PUT", path, json={"member": {"tags": merged}}))
        return self.api.get_member(self.id, str(member["id"])) or {**member, "tags": merged}

    def set_weights(self, weights: Mapping[str, int], max_weight: int) -> None:
        """One batch PUT with the full desired state of every member, then verify by reading back."""
        for member_id, weight in weights.items():
            if not 0 <= int(weight) <= max_weight:
                raise UsageError(f"weight {weight} for member {member_id} is outside 0..{max_weight}")

        def apply() -> bool:
            desired, changed = self._desired(weights)
            if changed:
                self.api.call("PUT", f"/pools/{self.id}/members", json={"members": desired})
            return changed

        if not self.write("changing weights", apply):
            return
        after = {m["id"]: m for m in self._kept_members()}
        wrong = [
            f"{mid}: {after[mid].get('weight')} instead of {w}"
            for mid, w in weights.items()
            if mid in after and int(after[mid].get("weight", -1)) != int(w)
        ]
        if wrong:
            raise ProviderError(f"pool {self.ref!r} did not take the new weights ({'; '.join(wrong)})")

    def _desired(self, weights: Mapping[str, int]) -> tuple[list[dict[str, Any]], bool]:
        """Every member's complete entry for the batch PUT (from a fresh read), and whether anything changes."""
        current = self._base()
        known = {m["id"] for m in current}
        missing = [mid for mid in weights if mid not in known]
        if missing:
            log.warning("set_weights: members %s are not in pool %s any more; skipped", ", ".join(missing), self.ref)
        desired = []
        changed = False
        for m in current:
            entry = _entry(m)
            if m["id"] in weights:
                weight = int(weights[m["id"]])
                if weight != m.get("weight"):
                    changed = True
                entry["weight"] = weight
                if weight > 0 and not m.get("admin_state_up", True):
                    entry["admin_state_up"] = True
                    changed = True
            desired.append(entry)
        return desired, changed

    def remove(self, member_id: str) -> None:
        """Delete the member; already gone is success."""
        path = f"/pools/{self.id}/members/{member_id}"
        self.write(f"removing member {member_id}", lambda: self.api.call("DELETE", path, allow=(404,)))

    def add_many(self, wanted: list[tuple[str, int, str, str | None]]) -> list[dict[str, Any]]:
        """`add` for a whole fleet ((address, port, server name, subnet id) each) in one batch PUT: the full
        desired state is every member as it is (other apps' untouched) plus ours at weight 0; a member already
        on one of the addresses is adopted (it gets our tags). Returns the members in the order asked."""
        tags = owner_tags(self.app, self.env)

        def apply() -> bool:
            current = self._base()
            desired = [_entry(m) for m in current]
            at = {(m["address"], int(m.get("protocol_port", 0))): i for i, m in enumerate(current)}
            changed = False
            for address, port, server_name, subnet_id in wanted:
                i = at.get((address, port))
                if i is not None:
                    have = list(current[i].get("tags") or [])
                    if owner_of(current[i]) != (self.app, self.env) or not all(t in have for t in tags):
                        desired[i]["tags"] = have + [t for t in tags if t not in have]
                        changed = True
                    continue
                entry: dict[str, Any] = {"address": address, "protocol_port": port, "weight": 0, "admin_state_up": True,
                                         "name": member_name(self.app, self.env, server_name), "tags": tags}
                if subnet_id:
                    entry["subnet_id"] = subnet_id
                at[(address, port)] = len(desired)
                desired.append(entry)
                changed = True
            if changed:
                self.api.call("PUT", f"/pools/{self.id}/members", json={"members": desired})
            return changed

        self.write(f"adding {len(wanted)} member(s)", apply)
        after = {(m["address"], int(m.get("protocol_port", 0))): m for m in self._kept_members()}
        missing = [f"{a}:{p}" for a, p, _, _ in wanted if (a, p) not in after]
        if missing:
            raise ProviderError(f"pool {self.ref!r} did not take the new members ({', '.join(missing)})")
        return [after[(a, p)] for a, p, _, _ in wanted]

    def remove_many(self, member_ids: list[str]) -> None:
        """`remove` for several members in one batch PUT: every other member's entry as it is. Already gone
        is success; nothing to remove is no write."""
        gone = set(member_ids)

        def apply() -> bool:
            current = self._base()
            if not any(m["id"] in gone for m in current):
                return False
            desired = [_entry(m) for m in current if m["id"] not in gone]
            self.api.call("PUT", f"/pools/{self.id}/members", json={"members": desired})
            return True

        self.write(f"removing {len(gone)} member(s)", apply)


def _entry(m: Mapping[str, Any]) -> dict[str, Any]:
    """A member's complete entry for a batch PUT, as it is now (a field left out would fall back to its
    create default, weight 1)."""
    entry = {"address": m["address"], "protocol_port": m["protocol_port"]}
    for key in MEMBER_FIELDS:
        if key in m and m[key] is not None:
            entry[key] = m[key]
    return entry


__all__ = ["Pool", "to_member", "owner_tags", "member_name", "owner_of"]
