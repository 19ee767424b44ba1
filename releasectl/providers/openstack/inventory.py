"""What exists in the project, read-only: flavors, images, networks, servers, load balancers, pools, DNS zones
and availability zones, and Nova's absolute limits. `init --provider openstack` picks its choices from it;
`config check --remote` checks releasectl.yaml's names against it. Nothing here writes to the cloud.

A listing the cloud does not offer (no DNS service, an API the user may not read) is recorded in
`Inventory.unreadable` with the reason, never guessed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from releasectl.errors import CredentialsError, NotFound, ProviderError
from releasectl.providers.base import LABEL_PREFIX, PLACEHOLDER  # PLACEHOLDER: what init writes where the project has nothing to choose

from .http import ServiceClient

log = logging.getLogger("releasectl.providers.openstack")

PAGE = 1000


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int  # MiB
    disk: int  # GiB; 0: the size of the image (boot from volume or an unbounded root disk)


@dataclass(frozen=True)
class ImageRef:
    id: str
    name: str
    status: str
    min_ram: int  # MiB
    min_disk: int  # GiB
    app: str | None = None  # releasectl_app of a baked image
    version: str | None = None


@dataclass(frozen=True)
class Named:
    """A network, server, load balancer, pool or zone: its id, name and what init and the checks need."""

    id: str
    name: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Inventory:
    flavors: list[Flavor] = field(default_factory=list)
    images: list[ImageRef] = field(default_factory=list)
    networks: list[Named] = field(default_factory=list)  # detail: external, subnets
    servers: list[Named] = field(default_factory=list)  # detail: image_id, networks, ours (releasectl-tagged)
    load_balancers: list[Named] = field(default_factory=list)  # detail: vip_address, status
    pools: list[Named] = field(default_factory=list)  # detail: loadbalancer_id, lb_algorithm
    zones: list[Named] = field(default_factory=list)  # Designate v2, when the cloud has it
    availability_zones: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # listing -> why it could not be read

    def to_dict(self) -> dict[str, Any]:
        return {
            "flavors": [vars(f) for f in self.flavors],
            "images": [{"id": i.id, "name": i.name, "status": i.status} for i in self.images],
            "networks": [n.name for n in self.networks],
            "servers": [s.name for s in self.servers if not s.detail.get("ours")],
            "load_balancers": [{"name": lb.name, "vip_address": lb.detail.get("vip_address")} for lb in self.load_balancers],
            "pools": [p.name for p in self.pools],
            "zones": [z.name for z in self.zones],
            "availability_zones": self.availability_zones,
            "unreadable": dict(self.unreadable),
        }


# ---- reading --------------------------------------------------------------------------------------------


class Designate(ServiceClient):
    service_type = "dns"

    def root(self, endpoint: str) -> str:
        url = endpoint.rstrip("/")
        return url if url.endswith("/v2") else url + "/v2"


def _listing(inv: Inventory, name: str, read: Callable[[], list[Any]]) -> list[Any]:
    """One listing; a refusal or a missing API becomes `unreadable[name]`. Credentials refused: raised."""
    try:
        return read()
    except CredentialsError:
        raise
    except ProviderError as exc:
        log.debug("could not list %s: %s", name, exc)
        inv.unreadable[name] = exc.message
        return []


def _flavor(f: dict[str, Any]) -> Flavor:
    return Flavor(id=str(f.get("id")), name=str(f.get("name")), vcpus=int(f.get("vcpus") or 0),
                  ram=int(f.get("ram") or 0), disk=int(f.get("disk") or 0))


def _image(i: dict[str, Any]) -> ImageRef:
    return ImageRef(id=str(i.get("id")), name=str(i.get("name") or ""), status=str(i.get("status") or ""),
                    min_ram=int(i.get("min_ram") or 0), min_disk=int(i.get("min_disk") or 0),
                    app=i.get(LABEL_PREFIX + "app"), version=i.get(LABEL_PREFIX + "version"))


def _server(s: dict[str, Any]) -> Named:
    image = s.get("image")
    metadata = s.get("metadata") or {}
    return Named(id=str(s.get("id")), name=str(s.get("name") or ""), detail={
        "image_id": image.get("id") if isinstance(image, dict) else None,
        "networks": sorted((s.get("addresses") or {}).keys()),
        "ours": any(str(k).startswith(LABEL_PREFIX) for k in metadata),
        "status": s.get("status"),
    })


def read_inventory(provider: Any) -> Inventory:
    """Everything init shows, from an OpenStackProvider (its authenticated service clients)."""
    inv = Inventory()
    provider.auth.token()  # authenticate first: refused credentials are one clear error, not eight
    nova, glance, neutron, octavia = provider.nova, provider.glance, provider.neutron, provider.octavia
    inv.flavors = [_flavor(f) for f in _listing(inv, "flavors", lambda: list(nova.pages("/flavors/detail", key="flavors")))]
    inv.images = [_image(i) for i in _listing(inv, "images", lambda: list(glance.iter_images([])))]
    inv.servers = [_server(s) for s in _listing(inv, "servers", lambda: list(nova.iter_servers()))]
    nets = _listing(inv, "networks", lambda: list(neutron.pages("/networks", key="networks")))
    inv.networks = [Named(id=str(n.get("id")), name=str(n.get("name") or ""),
                          detail={"external": bool(n.get("router:external")), "subnets": n.get("subnets") or []}) for n in nets]
    lbs = _listing(inv, "load_balancers", lambda: list(octavia.pages("/loadbalancers", key="loadbalancers", params={"limit": PAGE})))
    inv.load_balancers = [Named(id=str(lb.get("id")), name=str(lb.get("name") or ""),
                                detail={"vip_address": lb.get("vip_address"), "status": lb.get("provisioning_status")}) for lb in lbs]
    pools = _listing(inv, "pools", lambda: list(octavia.pages("/pools", key="pools", params={"limit": PAGE})))
    inv.pools = [Named(id=str(p.get("id")), name=str(p.get("name") or ""),
                       detail={"loadbalancers": [lb.get("id") for lb in p.get("loadbalancers") or []],
                               "lb_algorithm": p.get("lb_algorithm")}) for p in pools]
    inv.availability_zones = [
        str(z.get("zoneName")) for z in _listing(inv, "availability_zones", lambda: _availability_zones(nova))
        if (z.get("zoneState") or {}).get("available", True)
    ]
    if provider.auth.endpoint("dns", required=False) is None:
        inv.unreadable["zones"] = "the cloud has no DNS (Designate) service"
    else:
        dns = provider._client(Designate, "dns")
        zones = _listing(inv, "zones", lambda: dns.call("GET", "/zones", params={"limit": PAGE}).json().get("zones", []))
        inv.zones = [Named(id=str(z.get("id")), name=str(z.get("name") or ""), detail={"status": z.get("status")}) for z in zones]
    return inv


def _availability_zones(nova: Any) -> list[dict[str, Any]]:
    data = nova.get_json("/os-availability-zone")
    if data is None:
        raise NotFound("compute: no /os-availability-zone")
    return data.get("availabilityZoneInfo") or []


# ---- init's choices (pure) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    key: str  # openstack.<key>
    value: str  # a real name, or PLACEHOLDER
    why: str  # one line for the comment in releasectl.yaml and the table

    @property
    def placeholder(self) -> bool:
        return self.value == PLACEHOLDER


def fits(flavor: Flavor, image: ImageRef) -> list[str]:
    """Why `image` cannot boot on `flavor` (Nova refuses it), or nothing."""
    problems = []
    if flavor.ram and image.min_ram and flavor.ram < image.min_ram:
        problems.append(f"flavor {flavor.name} has {flavor.ram} MiB of RAM, image {image.name} needs {image.min_ram} MiB (min_ram)")
    if flavor.disk and image.min_disk and flavor.disk < image.min_disk:
        problems.append(f"flavor {flavor.name} has a {flavor.disk} GiB disk, image {image.name} needs {image.min_disk} GiB (min_disk)")
    return problems


def choose(inv: Inventory, app: str) -> list[Choice]:
    """builder, flavor, network and pool for a new releasectl.yaml: the one candidate, or the one that the
    others point at (the builder's network, a pool named after the app), else a marked placeholder."""
    free = [s for s in inv.servers if not s.detail.get("ours")]
    named = [s for s in free if "builder" in s.name.lower()]
    builders = named or (free if len(free) == 1 else [])
    builder = builders[0] if len(builders) == 1 else None
    choices = [
        Choice("builder", builder.name, "`bake` snapshots it: " + ("the one server named *builder*" if named else
                                                                  "the one server not made by releasectl"))
        if builder else Choice("builder", PLACEHOLDER, _none_or_several("builder server", [s.name for s in builders or free],
                                                                        "`releasectl builder up` boots one")),
    ]
    base = next((i for i in inv.images if builder and i.id == builder.detail.get("image_id")), None)
    fitting = sorted((f for f in inv.flavors if base is None or not fits(f, base)), key=lambda f: (f.ram, f.vcpus, f.disk, f.name))
    if fitting:
        why = f"the smallest of {len(inv.flavors)} flavor(s)" + (f" that fits {base.name}" if base else "")
        choices.append(Choice("flavor", fitting[0].name, why))
    else:
        choices.append(Choice("flavor", PLACEHOLDER, "no flavor found" + (f" that fits {base.name}" if base else "")))
    internal = [n for n in inv.networks if not n.detail.get("external")]
    on_builder = [n for n in internal if builder and n.name in builder.detail.get("networks", [])]
    nets = on_builder if len(on_builder) == 1 else internal
    if len(nets) == 1:
        choices.append(Choice("network", nets[0].name, "the builder's network" if on_builder else "the project's one private network"))
    else:
        choices.append(Choice("network", PLACEHOLDER, _none_or_several("private network", [n.name for n in internal],
                                                                       "`releasectl env up` creates one")))
    named = [p for p in inv.pools if app in p.name]
    pools = named if len(named) == 1 else inv.pools
    if len(pools) == 1:
        choices.append(Choice("pool", pools[0].name, "the project's one Octavia pool" if pools is inv.pools else f"the pool named after {app}"))
    else:
        choices.append(Choice("pool", PLACEHOLDER, _none_or_several("Octavia pool", [p.name for p in inv.pools],
                                                                    "`releasectl env up` creates the load balancer and its pool")))
    return choices


def _none_or_several(what: str, names: list[str], fix: str) -> str:
    if not names:
        return f"no {what} found: {fix}"
    shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
    return f"{len(names)} {what}s ({shown}): name yours, or {fix}"


# ---- config check --remote -----------------------------------------------------------------------------


@dataclass
class RemoteReport:
    found: dict[str, str] = field(default_factory=dict)  # openstack.<key> -> "name (id)"
    problems: list[str] = field(default_factory=list)  # one line each
    quota: dict[str, dict[str, Any]] | None = None  # filled by the caller from Provider.quota()
    quota_note: str = ""  # where the numbers came from, or why there are none


def check_remote(provider: Any, newest_image_id: str | None = None) -> RemoteReport:
    """Authenticate, then check that each named resource exists and that the flavor fits the builder's image
    and the newest baked one. (The quota headroom is Provider.quota()'s: `config check --remote` adds it.)"""
    report = RemoteReport()
    options = provider.options
    provider.auth.token()  # refused credentials: CredentialsError (exit 2), before any other line
    for key in ("builder", "flavor", "network", "pool"):
        if options.get(key) == PLACEHOLDER:
            report.problems.append(f"openstack.{key} is still {PLACEHOLDER}, the placeholder `releasectl init` wrote: "
                                   f"{'`releasectl builder up`' if key == 'builder' else '`releasectl env up`'} makes one, or name yours")
        elif not options.get(key):
            report.problems.append(f"openstack.{key} is not set")
    checks: dict[str, Callable[[str], tuple[str, Any]]] = {
        "builder": lambda ref: _builder(provider, ref),
        "flavor": lambda ref: _flavor_ref(provider, ref),
        "network": lambda ref: _network(provider, ref),
        "pool": lambda ref: _pool(provider, ref),
    }
    resolved: dict[str, Any] = {}
    for key, check in checks.items():
        ref = options.get(key)
        if not ref or ref == PLACEHOLDER:
            continue
        try:
            label, resolved[key] = check(str(ref))
            report.found[key] = label
        except CredentialsError:
            raise
        except ProviderError as exc:
            report.problems.append(f"openstack.{key}: {exc.message}")
    images = []
    builder = resolved.get("builder")
    if builder is not None and builder.detail.get("image_id"):
        image = _glance_image(provider, builder.detail["image_id"])
        if image is None:
            report.problems.append(f"openstack.builder: its image {builder.detail['image_id']} is gone from Glance")
        else:
            images.append(image)
            report.found["image"] = f"{image.name} ({image.id}), the builder's image"
    if newest_image_id:
        newest = _glance_image(provider, newest_image_id)
        if newest is not None and newest.status == "active":
            images.append(newest)
    flavor = resolved.get("flavor")
    if flavor is not None:
        for image in images:
            report.problems.extend(f"openstack.flavor: {why}" for why in fits(flavor, image))
    return report


def _by_id_or_name(ref: str, get: Callable[[str], Any], find: Callable[[str], list[Any]], what: str, hint: str) -> Any:
    """A server or pool named or identified by `ref`; NotFound, or an error when several share the name."""
    found = get(ref) if _uuid(ref) else None
    if found is None:
        named = find(ref)
        if len(named) > 1:
            raise ProviderError(f"several {what}s are named {ref!r}: use its id")
        found = named[0] if named else None
    if found is None:
        raise NotFound(f"no {what} {ref!r}", hint=hint)
    return found


def _builder(provider: Any, ref: str) -> tuple[str, Named]:
    nova = provider.nova
    found = _server(_by_id_or_name(ref, nova.get_server, nova.find_by_name, "server",
                                   "`releasectl builder up`, or name an existing server"))
    return f"{found.name} ({found.id}, {found.detail['status']})", found


def _flavor_ref(provider: Any, ref: str) -> tuple[str, Flavor]:
    flavor_id = provider.nova.flavor_id(ref)
    data = provider.nova.get_json(f"/flavors/{flavor_id}")
    if data is None:
        raise NotFound(f"no flavor {ref!r}")
    flavor = _flavor(data["flavor"])
    return f"{flavor.name} ({flavor.vcpus} vCPU, {flavor.ram} MiB RAM, {flavor.disk} GiB disk)", flavor


def _network(provider: Any, ref: str) -> tuple[str, dict[str, Any]]:
    net = provider.neutron.network(ref)
    return f"{net.get('name')} ({net.get('id')})", net


def _pool(provider: Any, ref: str) -> tuple[str, dict[str, Any]]:
    octavia = provider.octavia
    pool = _by_id_or_name(ref, octavia.get_pool, octavia.find_pools, "Octavia pool", "`releasectl env up`, or name an existing pool")
    return f"{pool.get('name')} ({pool.get('id')}, {pool.get('lb_algorithm')})", pool


def _glance_image(provider: Any, image_id: str) -> ImageRef | None:
    data = provider.glance.get_image(image_id)
    return None if data is None else _image(data)


def _uuid(ref: str) -> bool:
    from .neutron import looks_like_id

    return looks_like_id(ref)
