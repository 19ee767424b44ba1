"""Observe: one read-only snapshot of the environment, classified into fleets.

Everything the engine decides comes from here plus the release record: servers by their labels, pool
members matched to servers, and images. Nothing is cached between passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from releasectl.engine.model import HealthView, Release, restore_release_id
from releasectl.errors import ProviderError
from releasectl.providers.base import (
    ImageOutcome,
    LBState,
    LBStatus,
    Member,
    Provider,
    Role,
    Server,
)

if TYPE_CHECKING:  # `status` observes neither images nor counters (providers/base_extra.py)
    from releasectl.providers.base import Image, MemberStats


@dataclass(frozen=True)
class Observed:
    """Everything one pass of `decide` may look at. The reconcile runner fills the optional parts (LB state,
    health probes, member stats, images, intents) only when the pass needs them."""

    servers: tuple[Server, ...]
    members: tuple[Member, ...]
    lb: LBState = LBState(LBStatus.UP)
    health: HealthView = field(default_factory=HealthView)
    stats: Mapping[str, MemberStats] | None = None  # read during an analysis step
    images: tuple[Image, ...] | None = None  # read when a rollback must relaunch the previous version
    intents: tuple[Any, ...] = ()  # operator intents pending for the release (engine.intents.Intent)
    asserted: frozenset[str] = frozenset()  # servers whose membership this runner added or re-asserted

    def settled(self, current: Release | None) -> "Observed":
        """This observation with its servers' roles as the engine sees them while `current` runs (settle_roles)."""
        return replace(self, servers=settle_roles(self.servers, current))

    def member_of(self, server: Server) -> Member | None:
        for m in self.members:
            if m.server_id == server.id or (m.address == server.address and m.port == server.port):
                return m
        return None

    def server_of(self, member: Member) -> Server | None:
        for s in self.servers:
            if member.server_id == s.id or (member.address == s.address and member.port == s.port):
                return s
        return None

    def of_release(self, release_id: str) -> list[Server]:
        """Every server of the release, a half-deleted one included (a crash may have cut its delete short:
        the engine must see it to finish the job)."""
        return [s for s in self.servers if s.release_id == release_id]

    def with_role(self, *roles: Role, exclude_release: str | None = None) -> list[Server]:
        return [s for s in self.servers if s.role in roles and s.release_id != exclude_release]

    def members_for(self, servers: list[Server]) -> list[Member]:
        found = []
        for s in servers:
            m = self.member_of(s)
            if m is not None:
                found.append(m)
        return found

    def live_versions(self) -> list[str]:
        """Versions that members with weight > 0 serve."""
        versions = []
        for m in self.members:
            server = self.server_of(m)
            version = server.version if server else m.version
            if m.weight > 0 and version and version not in versions:
                versions.append(version)
        return versions


def observe(provider: Provider) -> Observed:
    return Observed(servers=tuple(provider.list_servers()), members=tuple(provider.list_members()))


def _in_progress(current: Release | None) -> frozenset[str]:
    """The release ids whose servers a release in progress still launches, gates or removes: the unfinished
    release's own and the previous version its rollback relaunched. Empty when every release has ended."""
    if current is None or current.phase.finished:
        return frozenset()
    return frozenset({current.id, restore_release_id(current)})


def settle_roles(servers: Iterable[Server], current: Release | None) -> tuple[Server, ...]:
    """Roles as the engine sees them: a server of the release in progress (`current`, unless it has ended) is
    its candidate.

    A release labels its servers stable when it launches them (what they are once it ends), so its end
    writes no label (issue 12: one metadata write per server saved); while it runs, the record makes them
    candidates. A record that is lost or stale leaves them stable, never orphans of no release: gc keeps
    them and the next release retires them as its old fleet, after its own is healthy and weighted in.
    A server labelled candidate (adopted from a warm fleet, or launched before this) keeps that label
    until its release ends and relabels it (decide.unlabelled_stable), as always."""
    ids = _in_progress(current)
    return tuple(replace(s, role=Role.CANDIDATE) if s.role is Role.STABLE and s.release_id in ids else s
                 for s in servers)


def lb_state(provider: Provider) -> LBState:
    """The LB's own state, for the runner, the verbs and `status` alike: a provider without `lb_state` yet
    counts as UP (nothing to supervise); one that cannot tell (its API errs) counts as ERROR."""
    try:
        return provider.lb_state()
    except NotImplementedError:
        return LBState(LBStatus.UP, "not observable on this provider")
    except ProviderError as exc:
        return LBState(LBStatus.ERROR, exc.message)


def live_version(observed: Observed, env: str | None = None,
                 images: Callable[[], Iterable[Image]] | None = None) -> str | None:
    """The version the stable fleet serves, from labels; falls back to what the pool routes to, then, given
    `env` and `images`, to the image the last finished release marked live in `env` if a stable server runs it.

    Two stable versions with traffic on both is what a release record lost mid-canary leaves (servers are
    labelled stable at launch; settle_roles needs the record): the image label, written when a release
    ends, still names the version that was live before it. Images are listed only in that case."""
    stable = {s.version for s in observed.with_role(Role.STABLE)}
    if len(stable) == 1:
        return stable.pop()
    live = observed.live_versions()
    if len(live) == 1:
        return live[0]
    if len(stable) > 1 and env is not None and images is not None:
        marked = {i.version for i in images() if i.labels.get(f"role_{env}") == "live"} & stable
        if len(marked) == 1:
            return marked.pop()
    return None


def rollback_targets(images: list[Image], env: str) -> list[Image]:
    """Versions that went live in `env` and were never marked failed or rolled back, newest release first,
    excluding the live one."""
    good = [
        i
        for i in images
        if i.labels.get(f"state_{env}") == ImageOutcome.RELEASED.value
        and i.outcome is not ImageOutcome.FAILED
        and i.labels.get(f"role_{env}") != "live"
    ]
    return sorted(good, key=lambda i: float(i.labels.get(f"released_at_{env}", i.created_at)), reverse=True)
