"""Damaged-state cases: a local project with real state files (no processes), the CLI run in process, and
the checks every case makes (exit code, one-line message, state unchanged, no process left).

The project is built once per session (init, two bakes, a finished release in current and history, one
stopped server, a load balancer record whose HAProxy is gone) and copied for each case, so a case costs a
copy and one or two in-process CLI runs.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import stat
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from releasectl.cli import main as cli_main
from releasectl.config import load_pipeline, load_settings
from releasectl.engine import records
from releasectl.engine.model import Phase, Release, ReleaseKind
from releasectl.providers.base import ProviderContext
from releasectl.providers.local import LocalProvider
from tests.conftest import CliRun
from tests.helpers import free_port, processes_under

APP = "shop"
ENV = "production"
SERVER_ID = "srv-0123456789ab"


def run_inprocess(*args: str, cwd: Path) -> CliRun:
    """`releasectl ARGS` in this process: stdout and stderr captured; cwd, signal handlers and logging
    restored afterwards."""
    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(list(args))
    finally:
        os.chdir(previous)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        root.handlers[:], root.level = saved
    return CliRun(code, out.getvalue(), err.getvalue())


def listing(root: Path) -> dict[str, str]:
    """sha256 (or kind) of every entry below root, symlinks not followed: proves nothing was written."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISREG(st.st_mode):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            out[rel] = f"-> {os.readlink(path)}"
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = "dir"
        else:
            out[rel] = f"mode {stat.S_IFMT(st.st_mode):o}"
    return out


@dataclass
class Project:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / ".releasectl"

    @property
    def env_dir(self) -> Path:
        return self.state / "envs" / ENV

    def run(self, *args: str) -> CliRun:
        return run_inprocess(*args, cwd=self.root)

    def provider(self) -> LocalProvider:
        s = load_settings(self.root / "releasectl.yaml", None)
        return LocalProvider(ProviderContext(app=s.app, env=s.env, config_dir=s.config_dir, state_dir=s.state_dir,
                                             health=s.health, app_port=s.app_port, options=dict(s.provider_options)))

    def image_dirs(self) -> list[Path]:
        return sorted(p for p in (self.state / "images").iterdir() if p.name.startswith("img-"))

    def image_dir(self, version: str) -> Path:
        for d in self.image_dirs():
            if json.loads((d / "manifest.json").read_text())["version"] == version:
                return d
        raise LookupError(version)

    # the state files a case damages, by name
    def state_file(self, name: str) -> Path:
        return {
            "current.rec": self.env_dir / "records" / "current.rec",
            "history.rec": next((self.env_dir / "records").glob("history*.rec")),
            "lock.json": self.env_dir / "lock.json",
            "lb.json": self.env_dir / "lb" / "lb.json",
            "members.json": self.env_dir / "lb" / "members.json",
            "server.json": self.env_dir / "servers" / SERVER_ID / "server.json",
            "manifest.json": self.image_dir("1.1.0") / "manifest.json",
        }[name]

    def check(self, result: CliRun, code: int) -> None:
        """Exit code as expected, and on failure exactly one error line (plus at most a hint).

        The template's HAProxy is deliberately not running, so `status` reports the LB DOWN and exits 5 by
        design: that one outcome stands for 0 here, when it is the only error and the JSON says so."""
        if code == 0 and result.code == 5 and result.stdout.lstrip().startswith("{"):
            doc = result.json()
            if doc.get("lb", {}).get("status") == "down" and [e["code"] for e in doc.get("errors", [])] == ["lb_down"]:
                return
        assert result.code == code, f"exit {result.code}, wanted {code}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
        if code:
            errors = [line for line in result.stderr.splitlines() if line.startswith("releasectl: error:")]
            assert errors, result.stderr
            if not result.stdout.lstrip().startswith("{"):  # doctor lists one line per finding
                assert len(errors) == 1, result.stderr

    def check_read(self, result: CliRun) -> None:
        """A read command exits 0, except `status`, whose exit follows the LB (5 while it is down or in
        ERROR, its JSON still complete): the template's HAProxy is not running."""
        lb = result.json().get("lb", {}).get("status") if result.stdout.lstrip().startswith("{") else None
        self.check(result, 5 if lb in ("down", "error") else 0)

    def no_process_left(self) -> None:
        assert processes_under(self.root) == []


def build_template(root: Path) -> Project:
    """init, bake 1.0.0 and 1.1.0, a finished rollout of 1.0.0 recorded, one server record whose process
    is gone, and lb.json/members.json of an HAProxy that is not running."""
    port = free_port()
    r = run_inprocess("init", str(root), "--app", APP, "--port", str(port), cwd=root.parent)
    assert r.code == 0, r.stderr
    project = Project(root)
    for version in ("1.0.0", "1.1.0"):
        r = project.run("bake", version)
        assert r.code == 0, r.stderr
    provider = project.provider()
    image = next(i for i in provider.list_images() if i.version == "1.0.0")
    now = time.time()
    release = Release(
        id="0123456789", app=APP, env=ENV, kind=ReleaseKind.ROLLOUT, version="1.0.0", image_id=image.id,
        previous_version=None, pipeline=load_pipeline("blue-green"), count=1, phase=Phase.SUCCEEDED,
        step_index=3, started_at=now - 60, updated_at=now - 30, ended_at=now - 30,
    )
    records.save(provider, release)
    sdir = project.env_dir / "servers" / SERVER_ID
    sdir.mkdir(parents=True)
    (project.env_dir / "servers" / ".create.lock").touch()
    (project.env_dir / "lock.flock").touch()
    server = {
        "format": 1, "id": SERVER_ID, "name": "shop-1.0.0-aaaaaa", "app": APP, "version": "1.0.0", "env": ENV,
        "role": "stable", "release": release.id,
        "labels": {"releasectl_app": APP, "releasectl_version": "1.0.0", "releasectl_env": ENV,
                   "releasectl_role": "stable", "releasectl_release": release.id},
        "pid": 1, "pid_start": -1, "boot_id": "", "port": 1, "image_id": image.id, "created_at": now - 60,
    }
    (sdir / "server.json").write_text(json.dumps(server, indent=2))
    lb = project.env_dir / "lb"
    lb.mkdir(parents=True)
    (lb / "lb.json").write_text(json.dumps({"pid": 1, "pid_start": -1, "boot_id": "", "socket": str(lb / "admin.sock"),
                                            "bind": "127.0.0.1", "port": port, "started_at": now - 60}))
    (lb / "members.json").write_text("[]\n")
    (lb / "pool.lock").touch()
    return project


def copy_project(template: Project, dest: Path) -> Project:
    shutil.copytree(template.root, dest, symlinks=True)
    return Project(dest)


# ---- damage ------------------------------------------------------------------------------------------------

def _wrong_field(path: Path) -> bytes:
    """The same document with one field the readers rely on given the wrong type."""
    doc = json.loads(path.read_text())
    if isinstance(doc, list):
        return b'[{"name": 5}]'
    for key, bad in (("expires_at", "soon"), ("pid", "one"), ("port", "eighty"), ("version", 5), ("started_at", "x")):
        if key in doc:
            doc[key] = bad
            return json.dumps(doc).encode()
    raise AssertionError(f"no field to damage in {path}")


def _deep() -> bytes:
    return b"[" * 200_000 + b"]" * 200_000


DAMAGES: dict[str, Callable[[Path], bytes | None]] = {
    "empty": lambda p: b"",
    "truncated": lambda p: p.read_bytes()[: max(1, len(p.read_bytes()) // 2)],
    "garbage_bytes": lambda p: b"\xff\xfe\x00\x80garbage\x9c",
    "not_json": lambda p: b"this is not json at all\n",
    "json_list": lambda p: b"[1, 2, 3]\n",
    "json_string": lambda p: b'"hello"\n',
    "json_null": lambda p: b"null\n",
    "wrong_field_type": _wrong_field,
    "huge": lambda p: b'{"pad": "' + b"x" * (2 << 20) + b'"}',
    "deep_nesting": lambda p: _deep(),
    "directory": lambda p: None,
    "fifo": lambda p: None,
    "symlink": lambda p: None,
}


def damage(path: Path, how: str) -> None:
    if how == "directory":
        path.unlink(missing_ok=True)
        path.mkdir()
    elif how == "fifo":
        path.unlink(missing_ok=True)
        os.mkfifo(path)
    elif how == "symlink":
        path.unlink(missing_ok=True)
        path.symlink_to("/dev/zero")
    else:
        data = DAMAGES[how](path)
        assert data is not None
        path.write_bytes(data)


# ---- hostile archives ----------------------------------------------------------------------------------------

def write_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(gzip.compress(buf.getvalue(), compresslevel=6))


def member(name: str, *, kind: bytes = tarfile.REGTYPE, data: bytes = b"x", link: str = "", size: int | None = None) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data) if size is None else size
        return info, data
    return info, None


def replace_archive(image_dir: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    """Swap the image's archive for a crafted one and re-sign the manifest, so only the member checks
    stand between it and the disk."""
    archive = image_dir / "image.tar.gz"
    write_archive(archive, members)
    st = archive.stat()
    manifest = json.loads((image_dir / "manifest.json").read_text())
    manifest.update(sha256=hashlib.sha256(archive.read_bytes()).hexdigest(), size=st.st_size, archive_mtime_ns=st.st_mtime_ns)
    (image_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
