"""The safety invariants every action is checked against before it runs (README: "Safety invariants").

- I1: while the environment has a live version (some member is healthy with weight > 0), after the action
  at least one member with weight > 0 is healthy and serving, unless the command is `down`.
- I2: never remove, drain or stop the members of the version that serves traffic before the version that
  replaces it is healthy and weighted in. A member still weighted in is never removed (drain it first), and
  the last serving members of a version are drained only when another version serves.
- I3: never touch a server, member or image releasectl does not own: servers carry the app + env tags
  (the provider lists only those), members are owned by app + env (`Member.owned_by`), belong to one of
  those servers, or are in the release record's own list (`Release.own_members`), images are the app's.

`check` is pure: it simulates the action on the observed pool. The runner refuses a violating action,
logs the invariant's name, and stops with `InvariantRefused` (exit 5) saying what it left serving; `decide`
is written to steer to the safe side first (e.g. relaunching the previous version before removing the new
fleet in a rollback after retirement), so a refusal means no safe move exists.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from releasectl.engine.actions import (
    Action,
    AddMember,
    AddMembers,
    DrainMembers,
    LaunchServer,
    LaunchServers,
    MarkImage,
    RelabelServers,
    RemoveMembers,
    ReplaceBroken,
    SetWeights,
    StopServers,
    weights_after,
)
from releasectl.engine.observe import Observed
from releasectl.errors import ProviderError
from releasectl.providers.base import AdminState, Health, Member, ServerStatus


class InvariantRefused(ProviderError):
    """An action would have broken a safety invariant, and no safe move exists: exit 5, nothing removed."""

    def __init__(self, message: str, *, invariant: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.invariant = invariant


@dataclass(frozen=True)
class Violation:
    invariant: str  # "I1", "I2" or "I3"
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


def serving(member: Member, obs: Observed | None = None) -> bool:
    """Healthy, weighted in and in rotation: it answers requests. With the observation, its server must be
    up too (the LB's verdict lags a server's death by `fall` checks)."""
    if not (member.weight > 0 and member.health is Health.HEALTHY and member.admin is not AdminState.MAINT):
        return False
    server = None if obs is None else obs.server_of(member)
    return server is None or server.status is ServerStatus.ACTIVE


def version_of(obs: Observed, member: Member) -> str:
    server = obs.server_of(member)
    return (server.version if server is not None else member.version) or "?"


def describe_serving(obs: Observed, members: Iterable[Member] | None = None) -> str:
    """'2 member(s) of 1.0.0 (shop-1.0.0-ab12cd, ...)': what serves traffic, for refusals and halts."""
    live = [m for m in (obs.members if members is None else members) if serving(m, obs)]
    if not live:
        return "no member serves traffic"
    by_version: dict[str, list[str]] = {}
    for m in live:
        by_version.setdefault(version_of(obs, m), []).append(m.name)
    return "; ".join(f"{len(names)} member(s) of {v} ({', '.join(names)})" for v, names in sorted(by_version.items()))


def owns_member(obs: Observed, member: Member, app: str, env: str, own_members: Iterable[str] = ()) -> bool:
    if member.owned_by(app, env) or member.id in set(own_members):
        return True
    server = obs.server_of(member)
    return server is not None and server.app == app and server.env == env


def after(obs: Observed, action: Action) -> list[Member]:
    """The pool as it would be once the action is done."""
    server_member = {s.id: m.id for s in obs.servers if (m := obs.member_of(s)) is not None}
    gone: set[str] = set()
    if isinstance(action, RemoveMembers):
        gone = set(action.member_ids)
    elif isinstance(action, StopServers):
        gone = {server_member[s] for s in action.server_ids if s in server_member}
    elif isinstance(action, ReplaceBroken):
        gone = {server_member.get(action.server_id), action.member_id} - {None}
    weights = weights_after(action)
    out = []
    for m in obs.members:
        if m.id in gone:
            continue
        if m.id in weights:
            # a member given weight > 0 is put into rotation (set_weights' contract), weight 0 drains it
            admin = AdminState.READY if weights[m.id] > 0 else m.admin
            m = replace(m, weight=weights[m.id], admin=admin)
        out.append(m)
    return out


def check(
    obs: Observed,
    action: Action,
    *,
    app: str,
    env: str,
    own_members: Iterable[str] = (),
    command: str = "",
    had_live_version: bool = True,
) -> Violation | None:
    """The first invariant the action would break, or None. `had_live_version` False: undoing the first
    release of the environment, which had no live version to keep (I1 then allows emptying it)."""
    violation = _check_ownership(obs, action, app, env, own_members)
    if violation is not None or command == "down":
        return violation
    # only the environment's own members count: another app's (or the operator's) members sharing the pool
    # serve other traffic, so they never make draining ours safe
    ours = {m.id for m in obs.members if owns_member(obs, m, app, env, own_members)}
    before = [m for m in obs.members if m.id in ours and serving(m, obs)]
    if not before:
        return None  # nothing serves: the action cannot take the environment down
    post = after(obs, action)
    if had_live_version and not any(m.id in ours and serving(m, obs) for m in post):
        return Violation(
            "I1", f"would leave no healthy member with weight > 0 (serving now: {describe_serving(obs)})"
        )
    post_ids = {m.id for m in post}
    weighted_removed = [m for m in obs.members if m.id not in post_ids and m.weight > 0]
    if weighted_removed:
        names = ", ".join(m.name for m in weighted_removed)
        return Violation("I2", f"would remove {names} while still weighted in (drain first)")
    return None


def _check_ownership(obs: Observed, action: Action, app: str, env: str, own_members: Iterable[str]) -> Violation | None:
    servers = {s.id: s for s in obs.servers}
    members = {m.id: m for m in obs.members}
    server_ids: tuple[str, ...] = ()
    member_ids: tuple[str, ...] = ()
    if isinstance(action, LaunchServer):
        if (action.spec.app, action.spec.env) != (app, env):
            return Violation("I3", f"would launch a server for {action.spec.app}/{action.spec.env}")
    elif isinstance(action, LaunchServers):
        foreign = [spec for spec in action.specs if (spec.app, spec.env) != (app, env)]
        if foreign:
            return Violation("I3", f"would launch a server for {foreign[0].app}/{foreign[0].env}")
    elif isinstance(action, (RelabelServers, StopServers)):
        server_ids = action.server_ids
    elif isinstance(action, ReplaceBroken):
        server_ids = (action.server_id,)
        member_ids = (action.member_id,) if action.member_id else ()
    elif isinstance(action, AddMember):
        server_ids = (action.server.id,)
    elif isinstance(action, AddMembers):
        server_ids = tuple(server.id for server in action.servers)
    elif isinstance(action, SetWeights):
        member_ids = tuple(mid for mid, _ in action.weights)
    elif isinstance(action, (DrainMembers, RemoveMembers)):
        member_ids = action.member_ids
    elif isinstance(action, MarkImage) and obs.images is not None:
        image = next((i for i in obs.images if i.id == action.image_id), None)
        if image is not None and image.app != app:
            return Violation("I3", f"would label image {image.name} of app {image.app}")
    for sid in server_ids:
        server = servers.get(sid)
        if server is None or server.app != app or server.env != env:
            return Violation("I3", f"server {sid} is not one of {app}/{env}'s")
    for mid in member_ids:
        member = members.get(mid)
        if member is None:
            continue  # gone already: the provider call is a no-op (idempotent)
        if not owns_member(obs, member, app, env, own_members):
            return Violation("I3", f"pool member {member.name} belongs to another app or environment")
    return None
