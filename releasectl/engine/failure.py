"""What a failed release records about its failure: the member it failed on and the analysis figures, as data
(`status` and CD jobs read them, never the wording). Loaded only when a release has failed or decide runs: the
read-only commands on a healthy environment do not create these classes (start-up, issue 12)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from releasectl.providers.base import Member, Server


@dataclass(frozen=True)
class FailingMember:
    """The server (pool member) a release failed on, as data: `status` and CD jobs read it, never the wording.
    `id` is the server's id when the provider can tell (what `status` lists under servers), else the member's."""

    name: str
    id: str

    @classmethod
    def of(cls, server: Server) -> "FailingMember":
        """The server a health failure names (three FAIL sites in decide.py)."""
        return cls(server.name, server.id)

    @classmethod
    def of_member(cls, member: Member, server_of: Callable[[Member], Server | None] | None = None) -> "FailingMember":
        """Named as its server (what `status` lists and health failures name), else as the LB names it."""
        server = server_of(member) if server_of is not None else None
        return cls.of(server) if server is not None else cls(member.name, member.server_id or member.id)


@dataclass(frozen=True)
class AnalysisResult:
    """An analysis verdict's figures, carried on the decision, the record's event and the record itself (a
    failed one), so the timeline and `status` read numbers, not the reason's words. Rates in percent."""

    result: str  # passed, failed, inconclusive
    new_error_rate_pct: float
    old_error_rate_pct: float | None  # None: the old fleet had no requests (or there is none)
    requests: int
    errors: int
    source: str  # LB_STATS, PROBES or POOL_STATUS
    max_error_rate_pct: float  # the step's threshold
    min_requests: int
    p95_ms: float | None = None  # of releasectl's probes, when the step has a p95 limit
    max_p95_ms: float | None = None
    failing_member: FailingMember | None = None  # the new member with the most errors, when any erred

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AnalysisResult":
        """Read back from a record (unknown keys of a newer writer ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        member = known.get("failing_member")
        known["failing_member"] = None if member is None else FailingMember(**member)
        return cls(**known)
