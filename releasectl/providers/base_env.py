"""The provider interface's environment, quota and builder types (part of releasectl.providers.base, which
re-exports every name here on first use: import them from there). Kept apart so that commands which never
build an environment or a builder do not pay for creating these dataclasses at start-up."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping

# ---- environment resources: what `env plan/up/down` builds before any release --------------------------


class EnvKind(str, enum.Enum):
    """The kinds of environment resource, in the order `env up` creates them (`env down` reverses it)."""

    FOLDER = "folder"  # local: the state folders
    NETWORK = "network"
    SUBNET = "subnet"
    KEYPAIR = "keypair"
    SECURITY_GROUP = "security_group"
    SECURITY_RULE = "security_rule"
    LOADBALANCER = "loadbalancer"  # local: the HAProxy load balancer
    LISTENER = "listener"
    POOL = "pool"
    HEALTH_MONITOR = "health_monitor"
    FLOATING_IP = "floating_ip"
    DNS_ZONE = "dns_zone"
    DNS_RECORD = "dns_record"


ENV_ORDER: tuple[EnvKind, ...] = tuple(EnvKind)


@dataclass(frozen=True)
class EnvSpec:
    """The `env:` section of releasectl.yaml, validated: what the environment is made of."""

    network: str  # the network to create (with `cidr`), or the existing one to use (cidr None)
    cidr: str | None = None
    public_key: str | None = None  # OpenSSH public key text (read from the configured file)
    ssh_from: str | None = None  # CIDR allowed to SSH in; None: no SSH rule
    listener_port: int = 80
    floating_ip: bool = False
    dns_zone: str | None = None  # "example.com." (FQDN); None: no DNS
    dns_name: str | None = None  # the record's FQDN, inside dns_zone
    dns_ttl: int = 300
    create_zone: bool = True  # create the zone when it does not exist (else it must exist)
    zone_email: str = "hostmaster@example.com"


class EnvAction(str, enum.Enum):
    CREATE = "create"
    UPDATE = "update"  # in place (a DNS record's address or TTL)
    REPLACE = "replace"  # delete, then create (a keypair, a rule or a monitor cannot change in place)
    DELETE = "delete"


@dataclass(frozen=True)
class EnvResource:
    """One environment resource, desired or observed. `spec` holds the attributes `env plan` compares (as
    strings, references to other resources by their key); `attrs` what the provider saw besides (an
    address, a CIDR). `owned`: releasectl made it (tagged for this app and environment); False: an existing
    resource the environment uses by name, never changed or deleted."""

    kind: EnvKind
    name: str
    spec: Mapping[str, str] = field(default_factory=dict)
    id: str = ""
    owned: bool = True
    attrs: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.name}"


@dataclass(frozen=True)
class EnvChange:
    action: EnvAction
    resource: EnvResource  # the desired one (the observed one for DELETE)
    old: EnvResource | None = None  # the observed one, for UPDATE and REPLACE
    fields: tuple[str, ...] = ()  # what differs, for UPDATE and REPLACE


@dataclass(frozen=True)
class Quota:
    """The project's limits and usage, by resource name (instances, cores, ram_mb, ports, floatingips,
    security_groups, members, load_balancers). A limit of UNLIMITED (-1) is unlimited; a resource missing from
    `limits` could not be read and is not checked. `per_server` is what one server of this environment takes
    (instances 1, its flavor's cores and RAM, a port, a pool member)."""

    limits: Mapping[str, int] = field(default_factory=dict)
    used: Mapping[str, int] = field(default_factory=dict)
    per_server: Mapping[str, int] = field(default_factory=lambda: {"instances": 1})


@dataclass(frozen=True)
class Recipe:
    """What the builder applies: a shell script, or cloud-config when it starts with `#cloud-config`."""

    name: str  # the file's name, for messages
    text: str
    sha256: str

    @property
    def kind(self) -> str:
        return "cloud-config" if self.text.lstrip().startswith("#cloud-config") else "shell"


@dataclass(frozen=True)
class BuilderSpec:
    """The builder to bring up: from an image of this app (the patch path) or, with None, the provider's base
    (local: the configured builder folder; openstack: openstack.base_image), then the recipe, bounded."""

    source_image_id: str | None
    recipe: Recipe | None
    timeout: float = 600.0


class BuilderStatus(str, enum.Enum):
    BUILDING = "building"  # booting or running its recipe
    READY = "ready"  # recipe done (or none): bake snapshots it
    STOPPED = "stopped"  # quiesced for a snapshot
    FAILED = "failed"  # the recipe failed or the server is in ERROR


@dataclass(frozen=True)
class Builder:
    """The app's builder from code (one per app). Not a pool member, never part of a fleet."""

    id: str
    name: str
    status: BuilderStatus
    source_image_id: str  # "" when booted from the base
    recipe_sha256: str  # "" without a recipe
    created_at: float
    address: str | None = None  # where its app answers, when it runs one (openstack); None for a folder
    port: int | None = None
    detail: str = ""  # why it FAILED: the tail of the recipe's output
