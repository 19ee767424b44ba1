"""HAProxy state interpretation and config rendering, on rows captured from 2.6.12 (no processes)."""

from __future__ import annotations

import pytest

from releasectl.providers.base import AdminState, Health, HealthCheck
from releasectl.errors import ConfigError, ProviderError
from releasectl.providers.local.haproxy import (
    MemberConfig,
    admin_state,
    cfg_word,
    member_health,
    render_config,
    server_timeout,
)

HEADER = ("be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
          "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state").split()


def row(op, admin, status, result, counter, check_state, weight=0):
    values = ["3", "app", "1", "s1", "127.0.0.1", op, admin, str(weight), "0", "0", status, result, counter, check_state]
    return dict(zip(HEADER, values)) | {"srv_port": "18001"}


@pytest.mark.parametrize(
    ("r", "health", "admin"),
    [
        (row("0", "1", "1", "0", "0", "2"), Health.UNKNOWN, AdminState.MAINT),  # added, checks off
        (row("0", "1", "1", "0", "0", "6"), Health.UNKNOWN, AdminState.MAINT),  # enable health, no result yet
        (row("0", "1", "15", "3", "1", "6"), Health.UNKNOWN, AdminState.MAINT),  # 1 of rise 2 passed
        (row("0", "1", "15", "3", "2", "6"), Health.HEALTHY, AdminState.MAINT),  # rise reached in MAINT
        (row("0", "1", "15", "0", "2", "7"), Health.HEALTHY, AdminState.MAINT),  # a check in flight: result 0
        (row("0", "1", "17", "2", "0", "6"), Health.UNHEALTHY, AdminState.MAINT),  # /healthz 500
        (row("2", "0", "15", "3", "3", "6"), Health.HEALTHY, AdminState.READY),  # UP
        (row("2", "0", "17", "2", "2", "6"), Health.UNKNOWN, AdminState.READY),  # UP 1/2: failing, not down
        (row("0", "0", "17", "2", "0", "6"), Health.UNHEALTHY, AdminState.READY),  # DOWN
        (row("0", "0", "15", "3", "1", "6"), Health.UNHEALTHY, AdminState.READY),  # DOWN 1/2, recovering
        (row("0", "0", "8", "2", "0", "6"), Health.UNHEALTHY, AdminState.READY),  # L4CON: process gone
        (row("2", "8", "15", "3", "3", "6"), Health.HEALTHY, AdminState.DRAIN),
        (row("0", "1", "15", "3", "0", "14"), Health.UNKNOWN, AdminState.MAINT),  # entered maint: paused
        (row("2", "4", "15", "3", "2", "6"), Health.HEALTHY, AdminState.READY),  # config `disabled`, enabled
        (row("0", "5", "1", "0", "0", "14"), Health.UNKNOWN, AdminState.MAINT),  # config `disabled`
    ],
)
def test_state_tables(r, health, admin):
    assert member_health(r, rise=2) is health
    assert admin_state(r) is admin


def test_render_config():
    cfg = render_config(
        bind="127.0.0.1",
        port=18080,
        socket_path="/tmp/x/admin.sock",
        state_file="/tmp/x/server-state",
        health=HealthCheck(path="/up", expected_status=204, interval=0.25, timeout=2, rise=3, fall=4),
        members=[
            MemberConfig("srv-a", "127.0.0.1", 4001, 100, "ready", False),
            MemberConfig("srv-b", "127.0.0.1", 4002, 30, "maint", False),
        ],
        app="demo",
        env="prod",
    )
    for line in (
        "stats socket /tmp/x/admin.sock mode 600 level admin",
        "server-state-file /tmp/x/server-state",
        "load-server-state-from-file global",
        "bind 127.0.0.1:18080",
        "balance roundrobin",
        "option httpchk GET /up",
        "http-check expect status 204",
        "option redispatch 1\n",
        "retries 3\n",
        "retry-on conn-failure empty-response junk-response response-timeout 0rtt-rejected\n",
        "timeout server 3000ms\n",  # fall 4 x inter 250ms + timeout 2s: a hung server is retried elsewhere
        "timeout connect 2000ms\n",
        "http-request disable-l7-retry unless { method GET HEAD OPTIONS TRACE PUT DELETE }\n",
        "server srv-a 127.0.0.1:4001 check inter 250ms downinter 100ms fall 4 rise 3 pool-max-conn -1 pool-purge-delay 5s weight 100\n",
        "server srv-b 127.0.0.1:4002 check inter 250ms downinter 100ms fall 4 rise 3 pool-max-conn -1 pool-purge-delay 5s weight 30 disabled",
    ):
        assert line in cfg, line


def _render(**kw):
    args = dict(bind="127.0.0.1", port=18080, socket_path="/tmp/x/admin.sock", state_file="/tmp/x/server-state",
                health=HealthCheck(), members=[], app="demo", env="prod")
    return render_config(**(args | kw))


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("/healthz", "/healthz"),
        ("/tmp/my state/admin.sock", '"/tmp/my state/admin.sock"'),
        ("/h#x", '"/h#x"'),
        ('/a"b', '"/a\\"b"'),
        ("/a$HOME", '"/a\\$HOME"'),
        ("/a\\b", '"/a\\\\b"'),
        ("/a\nbackend evil", '"/a\\x0abackend evil"'),
        ("", '""'),
    ],
)
def test_cfg_word_quotes_what_could_end_a_word_or_a_line(text, word):
    assert cfg_word(text) == word


def test_user_values_cannot_add_config_lines():
    cfg = _render(
        socket_path="/tmp/a b\nlisten evil\n/admin.sock",
        state_file="/tmp/s#tate",
        health=HealthCheck(path="/h z\nfrontend evil"),
        app="shop\nglobal",
        env="prod\r\n",
        members=[MemberConfig("s1", "::1", 4001, 10, "ready", False)],
    )
    sections = [line for line in cfg.splitlines() if line and not line[0].isspace() and not line.startswith("#")]
    assert sections == ["global", "defaults", "frontend fe", "backend app"]
    assert 'stats socket "/tmp/a b\\x0alisten evil\\x0a/admin.sock" mode 600' in cfg
    assert 'server-state-file "/tmp/s#tate"' in cfg
    assert 'option httpchk GET "/h z\\x0afrontend evil"' in cfg
    assert cfg.splitlines()[0].startswith("# Generated by releasectl for shop?global/prod??;")
    assert "server s1 [::1]:4001 " in cfg


@pytest.mark.parametrize("bind", ["localhost", "127.0.0.1:80", "1.2.3.4 # x", "127.0.0.1\nlisten x"])
def test_bind_must_be_an_ip_address(bind):
    with pytest.raises(ConfigError, match="lb_bind"):
        _render(bind=bind)


def test_member_address_must_be_an_ip_address():
    with pytest.raises(ProviderError, match="not an IP address"):
        _render(members=[MemberConfig("s1", "127.0.0.1 backup", 4001, 10, "ready", False)])


def test_server_timeout_follows_the_health_checks():
    assert server_timeout(HealthCheck(interval=1.0, timeout=2.0, fall=2)) == 4.0  # the defaults
    assert server_timeout(HealthCheck(interval=0.1, timeout=1.0, fall=2)) == pytest.approx(1.2)
    assert "timeout server 1200ms" in _render(health=HealthCheck(interval=0.1, timeout=1.0, fall=2))


class RefusingAPI:
    """A runtime API whose `del server` says "still has connections" a given number of times per member (G4)."""

    def __init__(self, refusals: dict[str, int]) -> None:
        self.refusals = dict(refusals)
        self.calls: list[str] = []

    def batch(self, commands) -> list[str]:
        self.calls.append("; ".join(commands))
        return []

    def call(self, command: str) -> str:
        self.calls.append(command)
        name = command.rsplit("/", 1)[1]
        if self.refusals.get(name, 0) > 0:
            self.refusals[name] -= 1
            return "Server still has connections attached to it, cannot remove it.\n"
        return "Server deleted.\n"


def test_a_fleet_is_put_in_maint_at_once_and_only_the_refused_are_retried(tmp_path):
    from releasectl.providers.local.pool import Pool

    pool = Pool(tmp_path, app="demo", env="test", health=HealthCheck(path="/healthz", interval=1.0, rise=2, fall=2),
                bind="127.0.0.1", port=8080, haproxy_bin="haproxy", stop_timeout=1.0, drain_timeout=1.0,
                servers=list)
    api = RefusingAPI({"b": 2})
    pool._delete_servers(api, ["a", "b", "c"])
    assert api.calls == [
        "set server app/a state maint; set server app/b state maint; set server app/c state maint",
        "del server app/a", "del server app/b", "del server app/c",
        "set server app/b state drain; set server app/b state maint", "del server app/b",
        "set server app/b state drain; set server app/b state maint", "del server app/b",
    ]

    with pytest.raises(ProviderError, match="refused to delete member x"):
        pool._delete_servers(type("Odd", (RefusingAPI,), {"call": lambda self, c: "Unknown command\n"})({}), ["x"])
