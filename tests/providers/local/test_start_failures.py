"""A server that cannot start is reported as ERROR with its reason, as Nova does, so the engine fails the
release on it (issue 8) instead of treating it as an infrastructure error that resume would repeat."""

from __future__ import annotations

from releasectl.providers.base import ServerStatus

from .conftest import spec


def test_a_missing_start_command_is_a_server_in_error_that_can_be_deleted(factory):
    provider = factory(start_command=["/nonexistent/releasectl-start", "{port}"])
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    server = provider.create_server(spec("1.0.0", image.id))
    assert server.status is ServerStatus.ERROR
    assert "could not start" in server.fault and "/nonexistent/releasectl-start" in server.fault
    listed = provider.get_server(server.id)
    assert listed is not None and listed.status is ServerStatus.ERROR
    provider.delete_server(server.id)  # never "still being created": nothing will ever start
    assert provider.get_server(server.id) is None
