"""OpenStack status strings -> releasectl's enums, as tables (unknown values have a stated default)."""

from __future__ import annotations

from releasectl.providers.base import AdminState, Health, ImageStatus, ServerStatus

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
