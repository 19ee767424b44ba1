"""HAProxy 2.6: the runtime API over its admin UNIX socket, the state tables, and config rendering.

No pool logic here (that is pool.py); this module only speaks HAProxy. Facts it relies on were checked on
2.6.12 (see shared/reference/haproxy.md and the notes below):

- The worker socket answers one line of commands (';'-separated) and closes. A successful set/enable/disable
  prints nothing; errors are plain text.
- `show servers state` codes: srv_admin_state is a mask (MAINT = 0x23, DRAIN = 0x18; 0x04 is only the
  config's `disabled` marker), srv_check_state is a mask (0x02 configured, 0x04 enabled, 0x08 paused by a
  transition into maintenance). srv_check_result reads 0 while a check is in flight, so health is derived
  from srv_check_status (the last finished check) and srv_check_health (the rise/fall counter).
- Checks keep running on a server that was *added* in MAINT and had `enable health`; a server that
  *entered* MAINT (config `disabled`, `state maint`) has its checks paused, and `enable health` does not
  resume them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from releasectl.errors import ConfigError, ProviderError
from releasectl.providers.base import AdminState, Health, HealthCheck

BACKEND = "app"
FRONTEND = "fe"

ADMF_MAINT = 0x01 | 0x02 | 0x20  # forced, inherited, resolution
ADMF_DRAIN = 0x08 | 0x10
CHK_CONFIGURED = 0x02
CHK_ENABLED = 0x04
CHK_PAUSED = 0x08
OP_STOPPED = 0

# srv_check_status (enum healthcheck_status in 2.6)
CHECK_PASSED = {6, 9, 15, 16, 20}  # L4OK, L6OK, L7OKD, L7OKCD, PROCOK
CHECK_FAILED = {4, 5, 7, 8, 10, 11, 12, 13, 17, 18, 19}  # HANA, SOCKERR, L4TOUT, L4CON, L6*, L7TOUT, L7RSP, L7STS, PROC*


class LBUnavailable(ProviderError):
    """The admin socket does not answer."""


class RuntimeAPI:
    """One HAProxy admin socket. Every call is one connection: send a line, read until HAProxy closes."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def call(self, command: str) -> str:
        import socket  # here: `status` without a running HAProxy never calls it

        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(self.path)
                s.sendall(command.encode() + b"\n")
                s.shutdown(socket.SHUT_WR)
                out = bytearray()
                while chunk := s.recv(65536):
                    out += chunk
        except OSError as exc:
            raise LBUnavailable(f"HAProxy admin socket {self.path} did not answer: {exc}") from exc
        return out.decode(errors="replace")

    def batch(self, commands: Iterable[str]) -> list[str]:
        """Run commands whose success prints nothing, in one line; return the error lines (empty = all ok)."""
        cmds = list(commands)
        if not cmds:
            return []
        reply = self.call("; ".join(cmds))
        return [line for line in reply.splitlines() if line.strip()]

    def ping(self, timeout: float | None = None) -> bool:
        """Whether HAProxy answers `show info` (within `timeout`, default the API's own)."""
        api = self if timeout is None else RuntimeAPI(self.path, timeout)
        try:
            return api.call("show info").startswith("Name: HAProxy")
        except LBUnavailable:
            return False

    def servers_state(self, backend: str = BACKEND) -> dict[str, dict[str, str]]:
        """'show servers state <be>' as {server name: {column: value}}."""
        lines = self.call(f"show servers state {backend}").splitlines()
        header: list[str] = []
        out: dict[str, dict[str, str]] = {}
        for line in lines:
            if line.startswith("# be_id"):
                header = line[2:].split()
            elif line and not line.startswith("#") and header and len(line.split()) >= 5:
                row = dict(zip(header, line.split()))
                out[row["srv_name"]] = row
        if not header and lines and lines[0].strip() != "1":
            raise ProviderError(f"unexpected reply to 'show servers state': {lines[0][:200]}")
        return out

    def dump_servers_state(self) -> str:
        """All backends, in the format `server-state-file` loads."""
        return self.call("show servers state")

    def stat(self, backend: str = BACKEND) -> dict[str, dict[str, str]]:
        """'show stat <be> 4 -1' (servers only) as {server name: {column: value}}."""
        lines = self.call(f"show stat {backend} 4 -1").splitlines()
        if not lines or not lines[0].startswith("# pxname"):
            raise ProviderError(f"unexpected reply to 'show stat': {(lines or [''])[0][:200]}")
        header = lines[0][2:].split(",")
        out = {}
        for line in lines[1:]:
            if line.strip():
                row = dict(zip(header, line.split(",")))
                out[row["svname"]] = row
        return out


# ---- interpreting state ----------------------------------------------------------------------------


def admin_state(row: dict[str, str]) -> AdminState:
    mask = int(row.get("srv_admin_state", "0"))
    if mask & ADMF_MAINT:
        return AdminState.MAINT
    if mask & ADMF_DRAIN:
        return AdminState.DRAIN
    return AdminState.READY


def checks_running(row: dict[str, str]) -> bool:
    st = int(row.get("srv_check_state", "0"))
    return bool(st & CHK_CONFIGURED) and bool(st & CHK_ENABLED) and not st & CHK_PAUSED


def member_health(row: dict[str, str], rise: int) -> Health:
    """The LB's verdict, from the rise/fall counter (UP iff counter >= rise) and the last finished check.

    HEALTHY: UP and the last check passed, i.e. checks passed `rise` times in a row and have not failed
    since (HAProxy routes to it, or would once enabled). UNHEALTHY: DOWN (counter below rise) after a
    failed check, or still DOWN while recovering. UNKNOWN: no finished check yet, checks off or paused, UP
    but failing (fewer than `fall` failures so far), or a new member in MAINT still rising.
    """
    if not checks_running(row):
        return Health.UNKNOWN
    status = int(row.get("srv_check_status", "0"))
    if status not in CHECK_PASSED and status not in CHECK_FAILED:
        return Health.UNKNOWN
    up = int(row.get("srv_check_health", "0")) >= rise
    if up:
        return Health.HEALTHY if status in CHECK_PASSED else Health.UNKNOWN
    if status in CHECK_FAILED:
        return Health.UNHEALTHY
    if admin_state(row) is not AdminState.MAINT and int(row.get("srv_op_state", "0")) == OP_STOPPED:
        return Health.UNHEALTHY  # DOWN, recovering
    return Health.UNKNOWN  # a new member in MAINT, rising


# ---- rendering -------------------------------------------------------------------------------------

# Retried on another server (L7 retries): failures where the server never answered. Never a status code:
# a canary's 5xx must reach the clients' counters and the analysis, not be hidden by a retry.
RETRY_ON = "conn-failure empty-response junk-response response-timeout 0rtt-rejected"
RETRIES = 3
# RFC 9110 9.2.2: a replay of these has the same effect as one request. Others are only retried when the
# connection failed before the request was sent (HAProxy's default conn-failure retry).
IDEMPOTENT_METHODS = "GET HEAD OPTIONS TRACE PUT DELETE"
_CFG_PLAIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@%+=,~")


def cfg_word(text: str) -> str:
    """One haproxy.cfg word, whatever `text` holds: plain when it is only safe characters, else weakly
    quoted with every special character escaped (2.2 "Quoting and escaping"), so a space, '#', quote,
    '$' or newline in a user-supplied path can never end the word, start a comment or add a line."""
    if text and all(c in _CFG_PLAIN for c in text):
        return text
    out = []
    for ch in text:
        if ch in '\\"$':
            out.append("\\" + ch)
        elif ch.isprintable() and ch not in "\r\n\t":
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def comment_text(text: str) -> str:
    """Text safe inside a '#' comment: printable characters only (a newline would start a new line)."""
    return "".join(c if c.isprintable() else "?" for c in text)


def bind_address(bind: str, port: int) -> str:
    """The `bind` word for an IP address and port; anything but an IP address (or '*') is refused."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ConfigError(f"local.lb_port {port!r} is not a TCP port")
    if bind in ("*", ""):
        return f"*:{port}"
    try:
        ip = ipaddress.ip_address(bind)
    except ValueError:
        raise ConfigError(f"local.lb_bind {bind!r} is not an IP address (e.g. 127.0.0.1 or ::1)") from None
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def server_address(address: str, port: int) -> str:
    """`address:port` of a member for the config and the runtime API; refuses anything but an IP."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ProviderError(f"member address {address!r} is not an IP address") from None
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ProviderError(f"member port {port!r} is not a TCP port")
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def server_timeout(health: HealthCheck) -> float:
    """How long HAProxy waits for a response before it counts the server as hung and retries the request
    on another one (L7 retry). Bounded by the health config instead of 30 s: the checks already call a
    server failing when /healthz takes longer than `timeout`; a request gets that plus `fall` check
    intervals, so a slow answer is not mistaken for a hung server, while a client waiting a few seconds
    still gets its answer from another server. A hung server is marked DOWN after about
    fall x (interval + timeout); until then each request it holds waits this long once."""
    return max(float(health.timeout), health.interval * health.fall + health.timeout)


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


DOWN_INTER = 0.1  # seconds between checks of a member that is fully DOWN (a booting one), at most `interval`


def down_interval(health: HealthCheck) -> float:
    """HAProxy's `downinter`: a new member is DOWN until its first passing check, and without this its first
    check waits a whole `inter` after `enable health` (measured on 2.6.12: 1.0 s of a 1 s interval), so a
    server that booted in 0.1 s joined a second late. Only a fully DOWN member is checked this often: an UP
    one, and one going up or down (`fastinter` is left unset), keeps `inter`, so `rise` checks in a row
    still mean what the operator configured and a failing member is marked down after `fall` x `inter`."""
    return min(float(health.interval), DOWN_INTER)


def check_args(health: HealthCheck) -> str:
    """Dynamic servers ignore default-server (G1): every server line and `add server` gets these."""
    return (
        f"check inter {_ms(health.interval)} downinter {_ms(down_interval(health))} fall {int(health.fall)} "
        f"rise {int(health.rise)} pool-max-conn -1 pool-purge-delay 5s"
    )


def add_server_command(name: str, address: str, port: int, weight: int, health: HealthCheck) -> str:
    return f"add server {BACKEND}/{name} {server_address(address, port)} {check_args(health)} weight {int(weight)}"


@dataclass(frozen=True)
class MemberConfig:
    """A member as persisted to members.json and rendered into haproxy.cfg."""

    name: str
    address: str
    port: int
    weight: int
    admin: str  # AdminState value
    checks_running: bool  # MAINT with checks still running: added, waiting for the health gate
    owned: bool = True  # added by releasectl (I3); a server someone added by hand is kept, never touched

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "weight": self.weight,
            "admin": self.admin,
            "checks_running": self.checks_running,
            "owned": self.owned,
        }

    @classmethod
    def from_json(cls, d: dict) -> MemberConfig:
        return cls(
            name=str(d["name"]),
            address=str(d["address"]),
            port=int(d["port"]),
            weight=int(d.get("weight", 0)),
            admin=str(d.get("admin", AdminState.READY.value)),
            checks_running=bool(d.get("checks_running", False)),
            owned=bool(d.get("owned", True)),  # members.json before ownership: releasectl added them all
        )

    @classmethod
    def from_state(cls, row: dict[str, str], owned: bool = True) -> MemberConfig:
        return cls(
            name=row["srv_name"],
            address=row["srv_addr"],
            port=int(row["srv_port"]),
            weight=int(row["srv_uweight"]),
            admin=admin_state(row).value,
            checks_running=checks_running(row),
            owned=owned,
        )


def render_config(
    *,
    bind: str,
    port: int,
    socket_path: str,
    state_file: str,
    health: HealthCheck,
    members: Iterable[MemberConfig],
    app: str,
    env: str,
) -> str:
    """haproxy.cfg for one app and environment. Members in MAINT are rendered `disabled`, so a restarted
    HAProxy never puts them in rotation; weights come from the line, admin state from the state file.

    Every user-supplied value is validated (addresses, numbers) or quoted (paths, the check URI) here.
    Server death: a request whose server died or hung (no response within `server_timeout`) is retried on
    another server when its method is idempotent (retry-on + `option redispatch 1`: every retry goes
    elsewhere), so a kill -9 or SIGSTOP of a member costs clients nothing while another member serves."""
    timeout = server_timeout(health)
    lines = [
        f"# Generated by releasectl for {comment_text(app)}/{comment_text(env)}; rewritten after every pool "
        "change. Do not edit.",
        "global",
        f"    stats socket {cfg_word(socket_path)} mode 600 level admin",
        "    stats timeout 30s",
        f"    server-state-file {cfg_word(state_file)}",
        "    noreuseport",  # a second HAProxy on the same port fails to start instead of sharing it
        "    maxconn 4096",
        "",
        "defaults",
        "    mode http",
        f"    timeout connect {_ms(min(2.0, timeout))}",
        "    timeout client 30s",
        f"    timeout server {_ms(timeout)}",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    timeout queue 10s",
        "    option redispatch 1",
        f"    retries {RETRIES}",
        f"    retry-on {RETRY_ON}",
        "    load-server-state-from-file global",
        "",
        f"frontend {FRONTEND}",
        f"    bind {bind_address(bind, port)}",
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        "    balance roundrobin",
        f"    option httpchk GET {cfg_word(health.path)}",
        f"    http-check expect status {int(health.expected_status)}",
        f"    timeout check {_ms(health.timeout)}",
        f"    http-request disable-l7-retry unless {{ method {IDEMPOTENT_METHODS} }}",
    ]
    for m in members:
        line = f"    server {m.name} {server_address(m.address, m.port)} {check_args(health)} weight {int(m.weight)}"
        if m.admin == AdminState.MAINT.value:
            line += " disabled"
        lines.append(line)
    return "\n".join(lines) + "\n"
