"""init's choices from a cloud's inventory (pure), the flavor-fits-image rule, and the YAML it writes for
names it did not make up (a hostile name cannot add a key)."""

from __future__ import annotations

import yaml

from releasectl.cli.scaffold import OPENSTACK_CONFIG, _cloud_line, _resource_lines
from releasectl.providers.openstack.inventory import PLACEHOLDER, Choice, Flavor, ImageRef, Inventory, Named, choose, fits

BASE = ImageRef(id="img", name="ubuntu", status="active", min_ram=1024, min_disk=10)


def inventory(**over) -> Inventory:
    inv = Inventory(
        flavors=[Flavor("3", "m1.large", 4, 8192, 80), Flavor("1", "m1.tiny", 1, 512, 1), Flavor("2", "m1.small", 1, 2048, 20)],
        images=[BASE],
        networks=[Named("n1", "private"), Named("n2", "public", {"external": True})],
        servers=[Named("s1", "shop-builder", {"image_id": "img", "networks": ["private"]}),
                 Named("s2", "shop-1.0.0-x", {"ours": True})],
        pools=[Named("p1", "shop-pool")],
    )
    for key, value in over.items():
        setattr(inv, key, value)
    return inv


def values(choices: list[Choice]) -> dict[str, str]:
    return {c.key: c.value for c in choices}


def test_one_candidate_each_is_chosen_and_the_flavor_is_the_smallest_that_fits_the_builders_image():
    assert values(choose(inventory(), "shop")) == {
        "builder": "shop-builder", "flavor": "m1.small", "network": "private", "pool": "shop-pool"}


def test_ambiguity_and_absence_become_placeholders_with_the_candidates_named():
    inv = inventory(servers=[Named("a", "web-1"), Named("b", "web-2")], networks=[Named("n1", "a"), Named("n2", "b")],
                    pools=[], flavors=[])
    chosen = {c.key: c for c in choose(inv, "shop")}
    assert all(c.placeholder and c.value == PLACEHOLDER for c in chosen.values())
    assert "web-1, web-2" in chosen["builder"].why and "a, b" in chosen["network"].why
    assert "env up" in chosen["pool"].why


def test_the_builders_network_and_the_pool_named_after_the_app_win_over_others():
    inv = inventory(networks=[Named("n1", "private"), Named("n3", "other")], pools=[Named("p1", "shop-pool"), Named("p2", "blog-pool")])
    assert values(choose(inv, "shop"))["network"] == "private"
    assert values(choose(inv, "shop"))["pool"] == "shop-pool"
    assert values(choose(inv, "wiki"))["pool"] == PLACEHOLDER


def test_fits_names_ram_and_disk_and_treats_zero_as_unbounded():
    assert fits(Flavor("2", "m1.small", 1, 2048, 20), BASE) == []
    problems = fits(Flavor("1", "m1.tiny", 1, 512, 1), BASE)
    assert len(problems) == 2 and "min_ram" in problems[0] and "min_disk" in problems[1]
    assert fits(Flavor("v", "volume-boot", 1, 2048, 0), BASE) == []


def test_written_names_read_back_as_themselves_and_cannot_inject_keys():
    hostile = ["x\nprovider: local", "true", "null", "a: b", "# c", "ok-name.1"]
    for name in hostile:
        lines = _resource_lines([Choice("builder", name, "why\nprovider: local"), Choice("pool", PLACEHOLDER, "none")])
        doc = yaml.safe_load(OPENSTACK_CONFIG.format(app="shop", cloud_line=_cloud_line("sim"), resources=lines))
        assert doc["provider"] == "openstack"
        assert doc["openstack"]["builder"] == name and doc["openstack"]["pool"] == PLACEHOLDER


def test_quota_becomes_used_limit_and_free_with_unlimited_as_none():
    """config check --remote and api.Client.quota() show Provider.quota() as this one table."""
    from releasectl.api import QuotaInfo
    from releasectl.providers.base import UNLIMITED, Quota

    quota = Quota(limits={"instances": 10, "cores": UNLIMITED, "ram_mb": 51200},
                  used={"instances": 4, "cores": 8, "ram_mb": 60000}, per_server={"instances": 1, "cores": 2})
    assert QuotaInfo.of(quota).to_dict() == {
        "resources": {"instances": {"used": 4, "limit": 10, "free": 6},
                      "cores": {"used": 8, "limit": -1, "free": None},
                      "ram_mb": {"used": 60000, "limit": 51200, "free": 0}},
        "per_server": {"instances": 1, "cores": 2},
    }
