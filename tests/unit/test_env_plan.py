"""`env plan` logic without a cloud: the `env:` section's validation, the desired resources, and the pure
planner (creates, nothing-to-do, in-place updates, replacements, refusals, the order of `down`)."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from releasectl.config import load_settings
from releasectl.engine.env import PENDING, desired, plan, plan_down
from releasectl.errors import ConfigError, UsageError
from releasectl.providers.base import ENV_ORDER, EnvAction, EnvKind, EnvResource, EnvSpec, HealthCheck

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1kV0Yw0zQ0bWc8kqj9n8Zr2ZQ4m2nqkJm0f7mZr1a ops@example"
OPENSTACK = frozenset(ENV_ORDER) - {EnvKind.FOLDER}
SPEC = EnvSpec(network="web-net", cidr="10.20.0.0/24", public_key=KEY, ssh_from="203.0.113.0/24", floating_ip=True,
               dns_zone="example.test.", dns_name="web.example.test.", dns_ttl=60)


def want(spec: EnvSpec = SPEC, observed: list[EnvResource] | None = None) -> list[EnvResource]:
    return desired(spec, app="web", env="prod", health=HealthCheck(), app_port=8000, kinds=OPENSTACK,
                   observed=observed or [])


def as_observed(resources: list[EnvResource], address: str = "127.255.0.7") -> list[EnvResource]:
    """What a cloud would report after `up`: the same specs, references dropped, addresses filled in."""
    out = []
    for r in resources:
        spec = {k: v for k, v in r.spec.items() if ":" not in v or v.split(":")[0] not in {k.value for k in EnvKind}}
        if r.kind is EnvKind.DNS_RECORD:
            spec["address"] = address
        attrs = {"address": address} if r.kind in (EnvKind.FLOATING_IP, EnvKind.LOADBALANCER) else {}
        out.append(replace(r, spec=spec, id=f"id-{r.key}", attrs=attrs))
    return out


def write(tmp_path: Path, body: str, key: str | None = KEY) -> Path:
    if key is not None:
        (tmp_path / "id.pub").write_text(key + "\n")
    path = tmp_path / "releasectl.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_the_env_section_becomes_a_typed_spec_and_names_what_releasectl_uses(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        app: web
        provider: openstack
        openstack: {flavor: m1.small, pool: hand-made}
        env:
          network: {name: web-net, cidr: 10.20.0.0/24}
          keypair: {public_key: id.pub}
          ssh_from: 203.0.113.7
          floating_ip: true
          dns: {zone: Example.Test, name: web, ttl: 60}
        environments:
          prod: {}
          dev:
            env:
              network: {existing: private}
        """)
    prod = load_settings(path, "prod")
    assert prod.env_spec == replace(SPEC, ssh_from="203.0.113.7/32", zone_email="hostmaster@example.test")
    # names releasectl creates are the defaults; what the user set stays
    assert prod.provider_options == {"pool": "hand-made", "network": "web-net", "security_groups": ["web-prod"],
                                     "key_name": "web-prod", "flavor": "m1.small"}
    dev = load_settings(path, "dev")
    assert dev.env_spec.network == "private" and dev.env_spec.cidr is None
    assert "public_key" not in dev.effective()["env"]


def test_init_placeholders_left_in_openstack_give_way_to_what_env_up_makes(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        app: web
        provider: openstack
        openstack: {flavor: m1.small, pool: CHANGE-ME, network: CHANGE-ME, builder: CHANGE-ME}
        env:
          network: {name: web-net, cidr: 10.20.0.0/24}
        """)
    options = load_settings(path, "production").provider_options
    assert options["pool"] == "web-production" and options["network"] == "web-net"
    assert options["builder"] == "CHANGE-ME"  # nothing `env up` makes: `config check --remote` still flags it


@pytest.mark.parametrize("section, words", [
    ("network: {name: n, cidr: 10.20.0.1/24}", "host bits zero"),
    ("network: {name: n, cidr: 10.0.0.0/30}", "prefix from /8 to /29"),
    ("network: {name: n}", "exactly one of `cidr`"),
    ("network: {existing: a, cidr: 10.0.0.0/24}", "exactly one of `cidr`"),
    ("{ssh_from: 10.0.0.0/8}", "required: `network:"),
    ("network: {existing: a}\n  ssh_from: 0.0.0.0/0", "whole internet"),
    ("network: {existing: a}\n  dns: {zone: example.test, name: web, ttl: 5}", "from 30 to 86400"),
    ("network: {existing: a}\n  dns: {zone: localhost, name: web}", "at least two labels"),
    ("network: {existing: a}\n  dns: {zone: example.test, name: web.other.test.}", "inside zone example.test."),
    ("network: {existing: a}\n  keypair: {public_key: missing.pub}", "cannot read the public key"),
    ("network: {existing: a}\n  keypair: {public_key: id.pub}\n  listener_port: 0", "TCP port"),
    ("network: {existing: a}\n  colour: blue", "unknown key"),
])
def test_env_section_problems_are_config_errors(tmp_path: Path, section: str, words: str) -> None:
    body = f"app: web\nprovider: openstack\nenv:\n  {section}\n" if not section.startswith("{") else \
        f"app: web\nprovider: openstack\nenv: {section}\n"
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert any(words in p.message for p in getattr(info.value, "problems", [info.value])), info.value.problems


def test_a_private_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "app: web\nprovider: openstack\nenv:\n  network: {existing: a}\n  keypair: {public_key: id.pub}\n",
                 key="-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "never the private key" in (info.value.hint or "") and "BEGIN" not in info.value.message


def test_desired_resources_in_creation_order_with_app_env_names() -> None:
    resources = want()
    assert [(r.kind.value, r.name) for r in resources] == [
        ("network", "web-net"), ("subnet", "web-net"), ("keypair", "web-prod"), ("security_group", "web-prod"),
        ("security_rule", "web-prod-app"), ("security_rule", "web-prod-ssh"), ("loadbalancer", "web-prod"),
        ("listener", "web-prod"), ("pool", "web-prod"), ("health_monitor", "web-prod"), ("floating_ip", "web-prod"),
        ("dns_zone", "example.test."), ("dns_record", "web.example.test.")]
    by_key = {r.key: r for r in resources}
    # the app port is open to the load balancer's subnet only
    assert by_key["security_rule:web-prod-app"].spec["remote"] == "10.20.0.0/24"
    assert by_key["security_rule:web-prod-app"].spec["port"] == "8000"
    assert by_key["pool:web-prod"].spec["algorithm"] == "ROUND_ROBIN"
    assert by_key["health_monitor:web-prod"].spec["path"] == "/healthz"
    record = by_key["dns_record:web.example.test."]
    assert record.spec["target"] == "floating_ip:web-prod" and record.spec["address"] == PENDING
    assert record.spec["ttl"] == "60" and record.spec["type"] == "A"


def test_minimal_spec_without_keypair_ssh_floating_ip_or_dns() -> None:
    kinds = [r.kind for r in want(EnvSpec(network="n", cidr="10.0.0.0/24"))]
    assert EnvKind.KEYPAIR not in kinds and EnvKind.FLOATING_IP not in kinds and EnvKind.DNS_RECORD not in kinds
    assert kinds.count(EnvKind.SECURITY_RULE) == 1


def test_ipv6_network_gets_an_aaaa_record_for_its_vip() -> None:
    spec = replace(SPEC, cidr="fd00:20::/64", floating_ip=False, ssh_from=None)
    record = next(r for r in want(spec) if r.kind is EnvKind.DNS_RECORD)
    assert record.spec["type"] == "AAAA" and record.spec["target"] == "loadbalancer:web-prod"
    rule = next(r for r in want(spec) if r.kind is EnvKind.SECURITY_RULE)
    assert rule.spec["ethertype"] == "IPv6"


def test_plan_from_nothing_creates_everything_then_nothing_twice() -> None:
    assert [c.action for c in plan(want(), [])] == [EnvAction.CREATE] * 13
    observed = as_observed(want())
    assert plan(want(observed=observed), observed) == []


def test_a_ttl_change_is_exactly_one_in_place_update() -> None:
    observed = as_observed(want())
    changes = plan(want(replace(SPEC, dns_ttl=300), observed), observed)
    assert [(c.action, c.resource.key, c.fields) for c in changes] == [
        (EnvAction.UPDATE, "dns_record:web.example.test.", ("ttl",))]


def test_a_new_key_replaces_the_keypair_and_a_health_change_the_monitor() -> None:
    observed = as_observed(want())
    other = KEY.replace("Gq1k", "Zz9k")
    changes = plan(want(replace(SPEC, public_key=other), observed), observed)
    assert [(c.action, c.resource.key) for c in changes] == [(EnvAction.REPLACE, "keypair:web-prod")]
    monitor = desired(SPEC, app="web", env="prod", health=HealthCheck(path="/ready"), app_port=8000, kinds=OPENSTACK,
                      observed=observed)
    assert [(c.action, c.fields) for c in plan(monitor, observed)] == [(EnvAction.REPLACE, ("path",))]


def test_changes_that_need_a_rebuild_are_refused() -> None:
    observed = as_observed(want())
    with pytest.raises(UsageError) as info:
        plan(want(replace(SPEC, cidr="10.30.0.0/24"), observed), observed)
    assert "cannot change cidr" in info.value.message and "env down" in info.value.hint


def test_an_existing_network_must_exist_and_is_never_deleted() -> None:
    spec = EnvSpec(network="private")
    with pytest.raises(UsageError, match="network 'private' does not exist"):
        plan(want(spec), [])
    existing = EnvResource(EnvKind.NETWORK, "private", id="n1", owned=False, attrs={"cidr": "127.0.1.0/24", "ip_version": "4"})
    resources = want(spec, [existing])
    rule = next(r for r in resources if r.kind is EnvKind.SECURITY_RULE)
    assert rule.spec["remote"] == "127.0.1.0/24"
    assert EnvKind.SUBNET not in [c.resource.kind for c in plan(resources, [existing])]
    assert plan_down([existing]) == []


def test_a_resource_with_our_name_that_is_not_ours_is_refused() -> None:
    zone = EnvResource(EnvKind.DNS_ZONE, "example.test.", id="z", owned=False)
    resources = want(observed=[zone])  # a foreign zone is used, not created
    assert next(r for r in resources if r.kind is EnvKind.DNS_ZONE).owned is False
    assert EnvKind.DNS_ZONE not in [c.resource.kind for c in plan(resources, [zone])]
    with pytest.raises(UsageError, match="does not exist"):
        plan(want(replace(SPEC, create_zone=False)), [])


def test_down_deletes_owned_resources_in_reverse_order() -> None:
    observed = as_observed(want()) + [EnvResource(EnvKind.NETWORK, "shared", owned=False)]
    kinds = [c.resource.kind for c in plan_down(observed)]
    assert kinds == sorted(kinds, key=lambda k: -ENV_ORDER.index(k)) and len(kinds) == 13
    assert all(c.action is EnvAction.DELETE for c in plan_down(observed))
    assert "network:shared" not in [c.resource.key for c in plan_down(observed)]


def test_a_duplicate_left_by_a_killed_replacement_is_deleted_and_the_match_kept() -> None:
    observed = as_observed(want())
    rule = next(r for r in observed if r.key == "security_rule:web-prod-ssh")
    stale = replace(rule, id="old", spec={**rule.spec, "remote": "198.51.100.0/24"})
    changes = plan(want(observed=observed), observed + [stale])
    assert [(c.action, c.resource.id) for c in changes] == [(EnvAction.DELETE, "old")]


def test_a_new_ssh_source_replaces_the_rule() -> None:
    observed = as_observed(want())
    changes = plan(want(replace(SPEC, ssh_from="198.51.100.0/24"), observed), observed)
    assert [(c.action, c.resource.key, c.fields) for c in changes] == [
        (EnvAction.REPLACE, "security_rule:web-prod-ssh", ("remote",))]
