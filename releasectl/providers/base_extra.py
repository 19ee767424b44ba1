"""The provider interface's image, boot, probe and traffic-counter types (part of releasectl.providers.base,
which re-exports every name here on first use: import them from there). Kept apart because `status` makes none
of them, and creating a dataclass costs every command's start-up (issue 12): a bake, `images`, a launch, a probe
or an analysis loads this module when it first needs one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from releasectl.providers.base import ImageOutcome, ImageStatus, Label, Role


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    app: str
    version: str
    status: ImageStatus
    created_at: float  # epoch seconds
    size: int | None = None
    checksum: str | None = None  # sha256 hex where the provider has it
    source: str = ""
    protected: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)  # without LABEL_PREFIX

    @property
    def outcome(self) -> ImageOutcome | None:
        value = self.labels.get(Label.OUTCOME)
        return ImageOutcome(value) if value in ImageOutcome._value2member_map_ else None


@dataclass(frozen=True)
class ServerSpec:
    """What to boot. The provider stores app/version/env/role/release as labels, plus `labels`."""

    name: str
    image_id: str
    app: str
    version: str
    env: str
    role: Role
    release_id: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MemberStats:
    """Cumulative per-member counters since the LB started; the engine works with deltas."""

    member_id: str
    requests: int
    http_5xx: int
    errors: int  # connection + response errors
    response_time_ms: float | None = None  # LB's recent average, when available


@dataclass(frozen=True)
class Probe:
    """One HTTP GET made by releasectl itself against a server."""

    status: int | None
    latency: float  # seconds
    body: str = ""
    error: str | None = None  # connection error text when status is None
    source: str = "probe"  # "probe": an HTTP GET of ours; "pool status": the LB's view read instead (probe: false)

    def passed(self, expected_status: int) -> bool:
        return self.status == expected_status
