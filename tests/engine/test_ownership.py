"""I3 in gc and down: a second app on the same pool keeps its members (issue 8, outage 3)."""

from __future__ import annotations

from releasectl.engine.context import EngineContext
from releasectl.engine.observe import Observed
from releasectl.engine.release import orphans
from releasectl.providers.base import HealthCheck, Role
from tests.engine.test_decide import member, server


class Images:
    """The one provider call `orphans` makes besides what it is given."""

    def list_images(self):
        return []


def test_gc_never_counts_another_apps_member_as_an_orphan():
    ours = server(1, "1.0.0", Role.CANDIDATE, "long-gone")
    theirs = server(2, "3.0.0", Role.STABLE, "x", app="blog")
    observed = Observed(servers=(ours,), members=(member(ours, 0), member(theirs, 100)))
    ctx = EngineContext(provider=Images(), app="shop", env="production", image_name="{app}-{version}", count=2,
                        health=HealthCheck())
    members, servers, _ = orphans(ctx, observed, None)
    assert [m.id for m in members] == ["ms1"] and [s.id for s in servers] == ["s1"]
