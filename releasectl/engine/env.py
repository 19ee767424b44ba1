"""`env plan`, `env up`, `env down`: the environment a release runs in, built from releasectl.yaml.

Planning is pure: `desired(...)` turns the `env:` section into resources, `plan(desired, observed)` and
`plan_down(observed)` compare them into typed changes. `up` and `down` observe, plan, and apply the changes
one at a time in dependency order (`ENV_ORDER`; `down` reverses it), each waited for by the provider. A
killed run converges on the next one: every created resource is tagged (found again by `env_observe`), so
a rerun plans only what is still missing or still there.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable

from releasectl.engine.context import EngineContext
from releasectl.engine.lock import LockKeeper
from releasectl.engine.quota import preflight
from releasectl.errors import UsageError
from releasectl.providers.base import ENV_ORDER, EnvAction, EnvChange, EnvKind, EnvResource, EnvSpec, HealthCheck

# Kinds whose differences can be applied by deleting and creating again without touching anything else.
REPLACEABLE = frozenset({EnvKind.KEYPAIR, EnvKind.SECURITY_RULE, EnvKind.HEALTH_MONITOR, EnvKind.FLOATING_IP})
UPDATABLE = frozenset({EnvKind.DNS_RECORD})  # changed in place
# Replaced by creating the new one before deleting the old, so the app port never closes to the load balancer.
CREATE_FIRST = frozenset({EnvKind.SECURITY_RULE, EnvKind.FLOATING_IP})
PENDING = "(known after apply)"  # a value that exists only once another resource is made


def env_prefix(app: str, env: str) -> str:
    """Every resource releasectl makes for an environment is named with this prefix."""
    return f"{app}-{env}"


def ref(kind: EnvKind, name: str) -> str:
    return f"{kind.value}:{name}"


def _find(observed: list[EnvResource], kind: EnvKind, name: str) -> EnvResource | None:
    return next((r for r in observed if r.kind is kind and r.name == name), None)


def desired(
    spec: EnvSpec, *, app: str, env: str, health: HealthCheck, app_port: int, kinds: frozenset[EnvKind],
    observed: list[EnvResource],
) -> list[EnvResource]:
    """The resources the `env:` section asks for, limited to the provider's kinds. `observed` only fills in
    values that come from the cloud (an existing network's CIDR, the address a DNS record points at)."""
    p = env_prefix(app, env)
    if EnvKind.NETWORK not in kinds:  # local: the state folders and the HAProxy load balancer
        return [r for r in (EnvResource(EnvKind.FOLDER, p), EnvResource(EnvKind.LOADBALANCER, p)) if r.kind in kinds]
    out: list[EnvResource] = []
    net = ref(EnvKind.NETWORK, spec.network)
    if spec.cidr is not None:
        cidr = ipaddress.ip_network(spec.cidr)
        out.append(EnvResource(EnvKind.NETWORK, spec.network))
        out.append(EnvResource(EnvKind.SUBNET, spec.network, {"network": net, "cidr": str(cidr), "ip_version": str(cidr.version)}))
        lb_cidr, version = str(cidr), cidr.version
    else:
        existing = _find(observed, EnvKind.NETWORK, spec.network)
        out.append(EnvResource(EnvKind.NETWORK, spec.network, owned=False))
        lb_cidr = (existing.attrs.get("cidr") if existing else None) or PENDING
        version = int((existing.attrs.get("ip_version") if existing else None) or 4)
    if spec.public_key:
        out.append(EnvResource(EnvKind.KEYPAIR, p, {"public_key": spec.public_key}))
    group = ref(EnvKind.SECURITY_GROUP, p)
    out.append(EnvResource(EnvKind.SECURITY_GROUP, p))
    ethertype = f"IPv{version}"
    out.append(EnvResource(EnvKind.SECURITY_RULE, f"{p}-app", {
        "group": group, "protocol": "tcp", "port": str(app_port), "remote": lb_cidr, "ethertype": ethertype}))
    if spec.ssh_from:
        ssh = ipaddress.ip_network(spec.ssh_from)
        out.append(EnvResource(EnvKind.SECURITY_RULE, f"{p}-ssh", {
            "group": group, "protocol": "tcp", "port": "22", "remote": str(ssh), "ethertype": f"IPv{ssh.version}"}))
    lb = ref(EnvKind.LOADBALANCER, p)
    out.append(EnvResource(EnvKind.LOADBALANCER, p, {"network": net}))
    out.append(EnvResource(EnvKind.LISTENER, p, {"loadbalancer": lb, "protocol": "HTTP", "port": str(spec.listener_port)}))
    out.append(EnvResource(EnvKind.POOL, p, {"listener": ref(EnvKind.LISTENER, p), "protocol": "HTTP", "algorithm": "ROUND_ROBIN"}))
    out.append(EnvResource(EnvKind.HEALTH_MONITOR, p, {
        "pool": ref(EnvKind.POOL, p), "type": "HTTP", "path": health.path, "expected": str(health.expected_status),
        "delay": str(max(1, round(health.interval))), "timeout": str(max(1, min(round(health.timeout), round(health.interval)))),
        "rise": str(min(10, health.rise)), "fall": str(min(10, health.fall))}))
    target = lb
    if spec.floating_ip:
        out.append(EnvResource(EnvKind.FLOATING_IP, p, {"loadbalancer": lb}))
        target = ref(EnvKind.FLOATING_IP, p)
    if spec.dns_zone and spec.dns_name:
        zone = _find(observed, EnvKind.DNS_ZONE, spec.dns_zone)
        owned_zone = spec.create_zone and (zone is None or zone.owned)
        out.append(EnvResource(EnvKind.DNS_ZONE, spec.dns_zone, {"email": spec.zone_email} if owned_zone else {},
                               owned=owned_zone))
        pointed = next((r for r in observed if r.key == target), None)
        address = (pointed.attrs.get("address") if pointed else None) or PENDING
        rtype = "AAAA" if address != PENDING and ipaddress.ip_address(address).version == 6 else (
            "AAAA" if address == PENDING and version == 6 and not spec.floating_ip else "A")
        out.append(EnvResource(EnvKind.DNS_RECORD, spec.dns_name, {
            "zone": ref(EnvKind.DNS_ZONE, spec.dns_zone), "type": rtype, "ttl": str(spec.dns_ttl), "target": target,
            "address": address}))
    return [r for r in out if r.kind in kinds]


def is_ref(value: str) -> bool:
    """A spec value naming another resource (`network:web-prod`): structure, which tags and names already fix."""
    return value.split(":", 1)[0] in {k.value for k in EnvKind} and ":" in value


def _differs(want: EnvResource, have: EnvResource) -> tuple[str, ...]:
    """The spec fields that differ, references left out; a value still PENDING on our side differs."""
    return tuple(sorted(k for k, v in want.spec.items() if not is_ref(v) and have.spec.get(k) != v))


def plan(want: list[EnvResource], have: list[EnvResource]) -> list[EnvChange]:
    """What `env up` must do, in creation order. Raises UsageError for a change that would need the
    environment rebuilt (a subnet's CIDR, the load balancer's network) or a missing existing resource."""
    changes: list[EnvChange] = []
    for resource in sorted(want, key=lambda r: ENV_ORDER.index(r.kind)):
        same = [h for h in have if h.key == resource.key]
        # two of ours with one name (a run killed between the create and the delete of a replacement): keep
        # the one that matches, delete the others
        current = next((h for h in same if not _differs(resource, h)), same[0] if same else None)
        changes += [EnvChange(EnvAction.DELETE, h) for h in same if h is not current and h.owned]
        if not resource.owned:
            if current is None:
                raise UsageError(f"{resource.kind.value.replace('_', ' ')} {resource.name!r} does not exist",
                                 hint="create it, fix the env: section, or let releasectl create it")
            continue
        if current is None:
            changes.append(EnvChange(EnvAction.CREATE, resource))
            continue
        if not current.owned:
            raise UsageError(f"{resource.kind.value.replace('_', ' ')} {resource.name!r} exists and is not this environment's",
                             hint="choose another name in the env: section, or use it as an existing one")
        fields = _differs(resource, current)
        if not fields:
            continue
        if resource.kind in UPDATABLE:
            changes.append(EnvChange(EnvAction.UPDATE, resource, current, fields))
        elif resource.kind in REPLACEABLE:
            changes.append(EnvChange(EnvAction.REPLACE, resource, current, fields))
        else:
            raise UsageError(
                f"{resource.kind.value.replace('_', ' ')} {resource.name!r} cannot change {', '.join(fields)} in place",
                hint="run `releasectl env down` and `env up` again to rebuild the environment, or undo the change")
    return changes


def plan_down(have: list[EnvResource]) -> list[EnvChange]:
    """What `env down` must delete: every owned resource, in reverse creation order; never a referenced one."""
    owned = [r for r in have if r.owned]
    return [EnvChange(EnvAction.DELETE, r) for r in sorted(owned, key=lambda r: -ENV_ORDER.index(r.kind))]


@dataclass
class EnvReport:
    """What `env plan/up/down` did (or would do): the changes, and what is there afterwards."""

    action: str  # plan, up, down
    changes: list[EnvChange]
    applied: int = 0
    unchanged: int = 0
    resources: list[EnvResource] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)  # servers stopped by `down --force`


def _desired(ctx: EngineContext, spec: EnvSpec, app_port: int, observed: list[EnvResource]) -> list[EnvResource]:
    return desired(spec, app=ctx.app, env=ctx.env, health=ctx.health, app_port=app_port,
                   kinds=ctx.provider.env_kinds(), observed=observed)


def _kinds(ctx: EngineContext) -> frozenset[EnvKind]:
    kinds = ctx.provider.env_kinds()
    if not kinds:
        raise UsageError(f"the {ctx.provider.name} provider does not build environments")
    return kinds


def env_plan(ctx: EngineContext, spec: EnvSpec, app_port: int) -> EnvReport:
    """What `env up` would do, without writing anything."""
    _kinds(ctx)
    observed = ctx.provider.env_observe(spec)
    want = _desired(ctx, spec, app_port, observed)
    changes = plan(want, observed)
    return EnvReport("plan", changes, unchanged=len([r for r in want if r.owned]) - len(changes), resources=observed)


def _apply(ctx: EngineContext, changes: list[EnvChange], known: dict[str, EnvResource], lock: LockKeeper) -> int:
    done = 0
    for change in changes:
        ctx.stop.check()
        lock.check()
        r = change.resource
        ctx.event("env", f"{change.action.value} {r.kind.value.replace('_', ' ')} {r.name}", action=change.action.value,
                  resource=r.key)
        if change.action is EnvAction.REPLACE and change.old is not None:
            if r.kind in CREATE_FIRST:
                known[r.key] = ctx.provider.env_apply(EnvChange(EnvAction.CREATE, r), known) or r
                ctx.provider.env_apply(EnvChange(EnvAction.DELETE, change.old), known)
                done += 1
                continue
            ctx.provider.env_apply(EnvChange(EnvAction.DELETE, change.old), known)
            known.pop(r.key, None)
            change = EnvChange(EnvAction.CREATE, r)
        result = ctx.provider.env_apply(change, known)
        if result is None:
            if r.key in known and known[r.key].id == r.id:  # not the kept twin of a deleted duplicate
                del known[r.key]
        else:
            known[result.key] = result
        done += 1
    return done


# what each created resource takes of the project's quota (a load balancer's VIP and a floating IP: one port)
_QUOTA_OF = {
    EnvKind.LOADBALANCER: ("load_balancers", "ports"),
    EnvKind.SECURITY_GROUP: ("security_groups",),
    EnvKind.FLOATING_IP: ("floatingips",),
}


def quota_needs(changes: list[EnvChange]) -> dict[str, int]:
    """The quota `env up`'s creations take, for the preflight (replacements and updates take nothing new)."""
    needed: dict[str, int] = {}
    for change in changes:
        if change.action is EnvAction.CREATE:
            for resource in _QUOTA_OF.get(change.resource.kind, ()):
                needed[resource] = needed.get(resource, 0) + 1
    return needed


def env_up(ctx: EngineContext, spec: EnvSpec, app_port: int) -> EnvReport:
    """Create or update what the plan says, in order; a second run changes nothing."""
    _kinds(ctx)
    with LockKeeper(ctx.provider, {**ctx.actor, "command": "env up"}, ttl=ctx.lock_ttl) as lock:
        observed = ctx.provider.env_observe(spec)
        changes = plan(_desired(ctx, spec, app_port, observed), observed)
        preflight(ctx.provider, what="env up", extra=quota_needs(changes))
        going = [c.resource for c in changes if c.action is EnvAction.DELETE]  # duplicates: never referenced
        known = {r.key: r for r in observed if not any(r is g for g in going)}
        applied = 0
        # A DNS record's address is known only once its target exists: plan again after the first pass.
        for _ in range(2):
            applied += _apply(ctx, changes, known, lock)
            changes = plan(_desired(ctx, spec, app_port, list(known.values())), list(known.values()))
            if not changes:
                break
        if changes:
            raise UsageError("the environment did not converge: " + ", ".join(f"{c.action.value} {c.resource.key}" for c in changes))
        final = ctx.provider.env_observe(spec)
        unchanged = len([r for r in _desired(ctx, spec, app_port, final) if r.owned]) - applied
        return EnvReport("up", [], applied=applied, unchanged=max(0, unchanged), resources=final)


def env_down(ctx: EngineContext, spec: EnvSpec, *, force: bool,
             retire: Callable[[EngineContext], list[str]] | None = None) -> EnvReport:
    """Delete what `env up` made, in reverse order, waiting for each delete. Servers of the environment must
    be gone first: refused while any is there, unless `force`, which retires them first (`retire(ctx)`,
    the release engine's `down`)."""
    _kinds(ctx)
    retired: list[str] = []
    servers = ctx.provider.list_servers()
    if servers:
        if not force:
            raise UsageError(
                f"{len(servers)} server(s) of {ctx.app}/{ctx.env} are still there: {', '.join(s.name for s in servers[:5])}",
                hint="`releasectl down` stops them, or `env down --force` retires them first")
        retired = list(retire(ctx)) if retire is not None else []
    with LockKeeper(ctx.provider, {**ctx.actor, "command": "env down"}, ttl=ctx.lock_ttl) as lock:
        observed = ctx.provider.env_observe(spec)
        changes = plan_down(observed)
        applied = _apply(ctx, changes, {r.key: r for r in observed}, lock)
        return EnvReport("down", changes, applied=applied, resources=[r for r in ctx.provider.env_observe(spec) if r.owned],
                         retired=retired)


def change_rows(changes: list[EnvChange]) -> list[dict[str, str]]:
    """One plain row per change, for tables and JSON."""
    rows = []
    for c in changes:
        r = c.resource
        detail = ", ".join(f"{k}: {c.old.spec.get(k, '-') if c.old else '-'} -> {r.spec.get(k, '-')}" for k in c.fields) \
            if c.fields else ", ".join(f"{k}={v}" for k, v in r.spec.items() if not is_ref(v) and k != "public_key")
        rows.append({"action": c.action.value, "kind": r.kind.value, "name": r.name, "id": (c.old or r).id, "detail": detail})
    return rows


def resource_rows(resources: list[EnvResource]) -> list[dict[str, str]]:
    return [{"kind": r.kind.value, "name": r.name, "id": r.id, "owned": r.owned,
             **({"address": r.attrs["address"]} if r.attrs.get("address") else {})}
            for r in sorted(resources, key=lambda r: ENV_ORDER.index(r.kind))]


__all__ = ["desired", "plan", "plan_down", "env_plan", "env_up", "env_down", "EnvReport", "env_prefix", "PENDING",
           "change_rows", "resource_rows"]
