"""OpenStack status strings -> releasectl's enums, as tables (unknown values have a stated default), and the
one status waiter every poll of a Nova, Glance or Octavia resource goes through (`wait_for_status`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from releasectl.errors import ReleasectlError
from releasectl.providers.base import AdminState, Health, ImageStatus, LBState, LBStatus, ServerStatus
from releasectl.wait import FIRST_POLL, REAL_CLOCK, Clock, Pace, wait_for

# Nova `status`. Transitional states that end back in ACTIVE count as BUILDING (not ready, not broken).
SERVER_STATUS: dict[str, ServerStatus] = {
    "BUILD": ServerStatus.BUILDING,
    "ACTIVE": ServerStatus.ACTIVE,
    "ERROR": ServerStatus.ERROR,
    "UNKNOWN": ServerStatus.ERROR,  # nova-compute lost the host: the app is not serving
    "SHUTOFF": ServerStatus.STOPPED,
    "STOPPED": ServerStatus.STOPPED,
    "PAUSED": ServerStatus.STOPPED,
    "SUSPENDED": ServerStatus.STOPPED,
    "SHELVED": ServerStatus.STOPPED,
    "SHELVED_OFFLOADED": ServerStatus.STOPPED,
    "RESCUE": ServerStatus.STOPPED,
    "DELETED": ServerStatus.DELETING,
    "SOFT_DELETED": ServerStatus.DELETING,
    "REBOOT": ServerStatus.BUILDING,
    "HARD_REBOOT": ServerStatus.BUILDING,
    "REBUILD": ServerStatus.BUILDING,
    "RESIZE": ServerStatus.BUILDING,
    "VERIFY_RESIZE": ServerStatus.BUILDING,
    "REVERT_RESIZE": ServerStatus.BUILDING,
    "MIGRATING": ServerStatus.BUILDING,
    "PASSWORD": ServerStatus.BUILDING,
}


def server_status(status: str | None, task_state: str | None) -> ServerStatus:
    """Most in-flight tasks keep `status` ACTIVE: a `deleting` task means the server is going away."""
    if task_state == "deleting":
        return ServerStatus.DELETING
    return SERVER_STATUS.get(str(status or "").upper(), ServerStatus.BUILDING)


# Glance image `status`.
IMAGE_STATUS: dict[str, ImageStatus] = {
    "queued": ImageStatus.PENDING,
    "saving": ImageStatus.PENDING,
    "uploading": ImageStatus.PENDING,
    "importing": ImageStatus.PENDING,
    "active": ImageStatus.ACTIVE,
    "killed": ImageStatus.FAILED,
    "deleted": ImageStatus.FAILED,
    "pending_delete": ImageStatus.FAILED,
    "deactivated": ImageStatus.FAILED,  # data blocked by an admin: not bootable
}
IMAGE_FAILED = {k for k, v in IMAGE_STATUS.items() if v is ImageStatus.FAILED}


def image_status(status: str | None) -> ImageStatus:
    return IMAGE_STATUS.get(str(status or "").lower(), ImageStatus.PENDING)


# Octavia member `operating_status` -> health.
#
# - ONLINE: checks pass. ERROR: checks fail (UNHEALTHY).
# - DRAINING is what the amphora reports for a weight-0 member whose checks pass (HAProxy's DRAIN: up, but
#   weight 0); a failing weight-0 member reports ERROR. So DRAINING is healthy: the engine's launch gate
#   waits for a HEALTHY member at weight 0 before giving it traffic.
# - OFFLINE is what Octavia reports for a member the amphora has not reported on yet (a new member of a
#   monitored pool starts OFFLINE) and for one with admin_state_up false (not checked at all). Neither is a
#   failed check, so it is UNKNOWN: treating it as UNHEALTHY would fail a release whose new member simply
#   has not been checked yet.
# - NO_MONITOR, DEGRADED and anything else: UNKNOWN.
MEMBER_HEALTH: dict[str, Health] = {
    "ONLINE": Health.HEALTHY,
    "DRAINING": Health.HEALTHY,
    "ERROR": Health.UNHEALTHY,
    "OFFLINE": Health.UNKNOWN,
    "NO_MONITOR": Health.UNKNOWN,
    "DEGRADED": Health.UNKNOWN,
}


def member_health(operating_status: str | None) -> Health:
    return MEMBER_HEALTH.get(str(operating_status or "").upper(), Health.UNKNOWN)


def member_admin(admin_state_up: bool, weight: int) -> AdminState:
    """admin_state_up false is out of rotation (MAINT); weight 0 is draining (no new connections)."""
    if not admin_state_up:
        return AdminState.MAINT
    return AdminState.DRAIN if weight == 0 else AdminState.READY


# Octavia `provisioning_status` of a load balancer.
LB_READY = "ACTIVE"
LB_FAILED = {"ERROR", "DELETED", "PENDING_DELETE"}


# Octavia `provisioning_status` of a load balancer, as `lb_state` reports it (PENDING_* is BUSY).
LB_STATE: dict[str, LBStatus] = {
    "ACTIVE": LBStatus.UP,
    "PENDING_CREATE": LBStatus.BUSY,
    "PENDING_UPDATE": LBStatus.BUSY,
    "PENDING_DELETE": LBStatus.BUSY,
    "ERROR": LBStatus.ERROR,
    "DELETED": LBStatus.ABSENT,
}


def lb_state(lb: Mapping[str, Any] | None, pool: Mapping[str, Any] | None, ref: str) -> LBState:
    """What the load balancer of pool `ref` is doing, in Octavia's own words. Honest about the case where
    the LB is ACTIVE but nothing routes to the pool (no listener): UP, with a detail saying it serves nothing."""
    if pool is None:
        return LBState(LBStatus.ABSENT, f"no Octavia pool {ref!r}")
    if lb is None:
        return LBState(LBStatus.ABSENT, f"pool {ref!r} belongs to no load balancer")
    name = lb.get("name") or lb.get("id")
    prov = str(lb.get("provisioning_status", "")).upper()
    oper = str(lb.get("operating_status", "")).upper()
    status = LB_STATE.get(prov, LBStatus.ERROR)
    detail = f"load balancer {name}: provisioning_status {prov or '?'}, operating_status {oper or '?'}"
    if status is LBStatus.UP and not lb.get("admin_state_up", True):
        return LBState(LBStatus.DOWN, detail + "; admin_state_up is false (an operator disabled it)")
    if status is LBStatus.UP and not (pool.get("listeners") or []):
        return LBState(LBStatus.UP, detail + f"; pool {ref!r} has no listener, so it serves no traffic")
    return LBState(status, detail)


# ---- the one status waiter -------------------------------------------------------------------------------


@dataclass
class Poll:
    """How often waits re-read a resource (from wait.FIRST_POLL, growing by `backoff` to `interval` and on to
    `max_interval`), and on what clock."""

    interval: float = 1.0
    max_interval: float = 5.0
    clock: Clock = field(default=REAL_CLOCK)
    # growth per look, from wait.FIRST_POLL: slow enough that a 1-2 s Octavia update is seen within ~0.25 s
    # of settling (1.5 overshot by up to 0.6 s, on every write of a release's critical path)
    backoff: float = 1.25


GONE = object()  # what `fetch` returning None means to a wait for deletion


def wait_for_status(
    fetch: Callable[[], Mapping[str, Any] | None],
    *,
    what: str,
    timeout: float,
    poll: Poll,
    done: Callable[[Mapping[str, Any]], bool],
    failed: Callable[[Mapping[str, Any]], ReleasectlError | None] = lambda _: None,
    missing: Callable[[], ReleasectlError] | None = None,
    just_changed: bool = False,
    pace: Pace | None = None,
    first: float = FIRST_POLL,
) -> Mapping[str, Any] | None:
    """Re-read a resource until `done(resource)`, bounded by `timeout` (openstacksdk's `wait_for_status`, over
    releasectl's `wait_for`). `failed(resource)` returns the error of a declared failure state, raised at once.
    A vanished resource (fetch returns None) raises `missing()`; with `missing=None` it is what we waited for
    (a delete) and the wait returns None. `just_changed`: the resource cannot be done at once (a write was
    just accepted), so the first read is made after the first poll, not before it."""

    skip = [just_changed]

    def check() -> Any:
        if skip[0]:  # just written (Octavia answers a write with PENDING_*): the first look is after the first poll
            skip[0] = False
            return None
        resource = fetch()
        if resource is None:
            if missing is None:
                return GONE
            raise missing()
        error = failed(resource)
        if error is not None:
            raise error
        return resource if done(resource) else None

    result = wait_for(check, timeout=timeout, interval=poll.interval, max_interval=poll.max_interval, what=what, clock=poll.clock,
                      backoff=poll.backoff, pace=pace, first=first)
    return None if result is GONE else result
