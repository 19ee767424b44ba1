"""What the engine can do to the world, as data: `decide` returns one of these, `apply` performs it.

Actions are frozen dataclasses so a decision can be compared, logged and table-tested; `apply` is the only
place that turns one into provider calls. Each action is idempotent (re-applying after a crash converges).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

from releasectl.providers.base import Member, Provider, Server, ServerSpec


@dataclass(frozen=True)
class LaunchServer:
    """Boot one server. The spec's name is derived from the release, so a retried create finds it."""

    spec: ServerSpec


@dataclass(frozen=True)
class LaunchServers:
    """Boot a whole fleet at once (the provider creates them in parallel, bounded); names as LaunchServer's."""

    specs: tuple[ServerSpec, ...]


@dataclass(frozen=True)
class RelabelServers:
    """Adopt a warm server, mark a fleet stable, keep a fleet warm: label changes only."""

    server_ids: tuple[str, ...]
    labels: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class AddMember:
    """Put the server into the pool at weight 0 (idempotent: re-arms a half-added member)."""

    server: Server


@dataclass(frozen=True)
class AddMembers:
    """AddMember for a whole fleet in one LB change (one batch PUT on Octavia, one HAProxy session)."""

    servers: tuple[Server, ...]


@dataclass(frozen=True)
class SetWeights:
    """One weight change for several members (a canary step, or moving all traffic back)."""

    weights: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class DrainMembers:
    """Weight 0 for these members: no new requests, in-flight ones finish."""

    member_ids: tuple[str, ...]


@dataclass(frozen=True)
class RemoveMembers:
    """Take the members out of the pool in one LB change."""

    member_ids: tuple[str, ...]


@dataclass(frozen=True)
class StopServers:
    """Delete the servers in parallel (bounded) and wait for them together."""

    server_ids: tuple[str, ...]


@dataclass(frozen=True)
class ReplaceBroken:
    """Remove a broken (or half-deleted) server and its member; the launch step then boots another."""

    server_id: str
    member_id: str | None
    finishing: bool = False  # a delete cut short by a crash: does not count as a replacement


@dataclass(frozen=True)
class RestartLB:
    """The load balancer is down: `ensure_pool` restarts it and re-asserts its members."""

    detail: str = ""


@dataclass(frozen=True)
class MarkImage:
    image_id: str
    labels: tuple[tuple[str, str | None], ...]
    protected: bool | None = None


Action = Union[
    LaunchServer, LaunchServers, RelabelServers, AddMember, AddMembers, SetWeights, DrainMembers, RemoveMembers, StopServers, ReplaceBroken,
    RestartLB, MarkImage,
]


def pairs(mapping: Mapping[str, object]) -> tuple:
    """A mapping as a sorted tuple of pairs, so actions stay hashable and comparable."""
    return tuple(sorted(mapping.items()))


def relabel(servers: list[Server], **labels: str | None) -> RelabelServers:
    return RelabelServers(tuple(s.id for s in servers), pairs(labels))


def apply(action: Action, provider: Provider) -> Member | Server | None:
    """Perform one action with provider calls. Returns the member or server it created, if any."""
    if isinstance(action, LaunchServer):
        return provider.create_server(action.spec)
    if isinstance(action, LaunchServers):
        provider.create_servers(list(action.specs))
        return None
    if isinstance(action, RelabelServers):
        provider.update_servers_labels(list(action.server_ids), dict(action.labels))
        return None
    if isinstance(action, AddMember):
        return provider.add_member(action.server)
    if isinstance(action, AddMembers):
        provider.add_members(list(action.servers))
        return None
    if isinstance(action, SetWeights):
        provider.set_weights(dict(action.weights))
        return None
    if isinstance(action, DrainMembers):
        provider.set_weights({mid: 0 for mid in action.member_ids})
        return None
    if isinstance(action, RemoveMembers):
        provider.remove_members(list(action.member_ids))
        return None
    if isinstance(action, StopServers):
        provider.delete_servers(list(action.server_ids))
        return None
    if isinstance(action, ReplaceBroken):
        if action.member_id is not None:
            provider.remove_member(action.member_id)
        provider.delete_server(action.server_id)
        return None
    if isinstance(action, RestartLB):
        provider.ensure_pool()
        return None
    if isinstance(action, MarkImage):
        provider.update_image(action.image_id, labels=dict(action.labels), protected=action.protected)
        return None
    raise TypeError(f"not an action: {action!r}")


def weights_after(action: Action) -> dict[str, int]:
    """Weight changes the action makes."""
    if isinstance(action, SetWeights):
        return dict(action.weights)
    if isinstance(action, DrainMembers):
        return {mid: 0 for mid in action.member_ids}
    return {}


__all__ = [
    "Action", "AddMember", "AddMembers", "DrainMembers", "LaunchServer", "LaunchServers", "MarkImage", "RelabelServers", "RemoveMembers",
    "ReplaceBroken", "RestartLB", "SetWeights", "StopServers", "apply", "relabel", "pairs",
]
