"""The builder from code, with folders: `<state_dir>/builder/` holds the app's one builder.

    builder/builder.json   id, source_image_id, recipe_sha256, status, created_at, detail
    builder/tree/          the builder's files: the source image unpacked, or a copy of `local.builder`
    builder/recipe.log     the recipe's output (stdout and stderr)

`up` builds everything in `.builder-<id>-<pid>/` and renames it into place, so an interrupted `up` leaves no
half builder (the leftover is swept by the next `up`). The recipe runs in the tree with bash (a shell script)
or, for `#cloud-config`, its `write_files` (paths inside the tree) and `runcmd` only; in its own session,
killed with its children when it outlives the timeout, and when the CLI that runs it dies (kill -9: the
session's leader, `_LEADER`, sees its parent go and kills the whole session, so no recipe outlives the `up`
that nothing records). `bake` snapshots the tree while the builder is up.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from releasectl import safe_yaml
from releasectl.errors import ConfigError, Conflict, NotFound, RecipeFailed, UsageError
from releasectl.providers.base import RECIPE_DONE, RECIPE_FAILED, Builder, BuilderSpec, BuilderStatus, Recipe

from . import procs
from .files import fsync_dir, read_json, write_json

SCHEMA = {
    "id": (str,),
    "source_image_id": (str,),
    "recipe_sha256": (str,),
    "status": (str,),
    "created_at": (int, float),
    "detail": (str, None),
}
SKIP = shutil.ignore_patterns("__pycache__", ".git", ".hg", ".svn", ".releasectl", "*.pyc", "*.pyo")
CLOUD_CONFIG_KEYS = {"write_files", "runcmd"}
MAX_FILES = 1000
# The recipe's session leader: runs bash on the recipe and, should the CLI die before it (kill -9), kills the
# whole session (the recipe and every child it started). Exit status: the recipe's (128 + N for signal N).
_LEADER = """\
import os, subprocess, sys, time
parent = int(sys.argv[1])  # the CLI's pid, passed in: it may be gone before this line runs
child = subprocess.Popen(sys.argv[2:])
while child.poll() is None:
    if os.getppid() != parent:
        os.killpg(0, 9)
    time.sleep(0.1)
sys.exit(child.returncode if child.returncode >= 0 else 128 - child.returncode)
"""


def cloud_config_script(recipe: Recipe) -> str:
    """A #cloud-config recipe as the shell script the local builder runs: write_files, then runcmd.
    UsageError (nothing created) for what a folder cannot do or a path that leaves the tree."""
    try:
        data = safe_yaml.parse(recipe.text, recipe.name).data
    except ConfigError as exc:
        raise UsageError(f"recipe {exc.message}") from None
    if not isinstance(data, dict):
        raise UsageError(f"recipe {recipe.name}: a #cloud-config document is a mapping")
    unknown = sorted(set(data) - CLOUD_CONFIG_KEYS)
    if unknown:
        raise UsageError(f"recipe {recipe.name}: the local builder is a folder and does {', '.join(unknown)} no good",
                         hint="use write_files and runcmd, or a shell script")
    lines = ["set -e"]
    files = data.get("write_files") or []
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise UsageError(f"recipe {recipe.name}: write_files must be a list of at most {MAX_FILES} files")
    for entry in files:
        path = entry.get("path") if isinstance(entry, dict) else None
        content = entry.get("content", "") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not path.strip("/") or not isinstance(content, str):
            raise UsageError(f"recipe {recipe.name}: each write_files entry has a path and a text content")
        rel = PurePosixPath(path.lstrip("/"))
        if ".." in rel.parts:
            raise UsageError(f"recipe {recipe.name}: write_files path {path[:100]!r} climbs out of the builder")
        target = shlex.quote(str(rel))
        lines.append(f"mkdir -p -- \"$(dirname -- {target})\"")
        lines.append(f"printf %s {shlex.quote(content)} > {target}")
        if entry.get("permissions"):
            lines.append(f"chmod {shlex.quote(str(entry['permissions']))} {target}")
    commands = data.get("runcmd") or []
    if not isinstance(commands, list):
        raise UsageError(f"recipe {recipe.name}: runcmd must be a list")
    for command in commands:
        if isinstance(command, list) and all(isinstance(a, str) for a in command):
            lines.append(" ".join(shlex.quote(a) for a in command))
        elif isinstance(command, str):
            lines.append(command)
        else:
            raise UsageError(f"recipe {recipe.name}: each runcmd entry is a string or a list of strings")
    return "\n".join(lines) + "\n"


class LocalBuilder:
    def __init__(self, root: Path, *, base: Path, unpack: Callable[[str, Path], Any], exclude: Path) -> None:
        self.root = root  # <state_dir>/builder
        self.base = base  # the configured builder folder (`local.builder`)
        self.unpack = unpack  # ImageStore.unpack(image_id, dest)
        self.exclude = exclude.resolve()  # the state dir: never copied into the tree

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    def get(self) -> Builder | None:
        doc = read_json(self.root / "builder.json", SCHEMA)
        if doc is None:
            return None
        return Builder(
            id=doc["id"], name=str(self.tree), status=BuilderStatus(doc["status"]),
            source_image_id=doc["source_image_id"], recipe_sha256=doc["recipe_sha256"],
            created_at=float(doc["created_at"]), detail=doc.get("detail") or "",
        )

    def up(self, spec: BuilderSpec) -> Builder:
        if self.root.exists() and self.get() is not None:
            raise Conflict(f"a builder is up already in {self.root}")
        script = None
        if spec.recipe is not None:
            script = cloud_config_script(spec.recipe) if spec.recipe.kind == "cloud-config" else spec.recipe.text
        self._sweep()
        builder_id = f"builder-{secrets.token_hex(6)}"
        tmp = self.root.parent / f".builder-{builder_id}-{os.getpid()}"
        tmp.mkdir(parents=True)
        try:
            self._fill(tmp / "tree", spec.source_image_id)
            status, detail = BuilderStatus.READY, ""
            if script is not None:
                status, detail = self._run(script, tmp, spec.timeout, spec.recipe)
            doc = {"id": builder_id, "source_image_id": spec.source_image_id or "",
                   "recipe_sha256": spec.recipe.sha256 if spec.recipe else "", "status": status.value,
                   "created_at": time.time(), "detail": detail}
            write_json(tmp / "builder.json", doc)
            shutil.rmtree(self.root, ignore_errors=True)  # a leftover without builder.json
            os.rename(tmp, self.root)
            fsync_dir(self.root.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        builder = self.get()
        assert builder is not None
        if builder.status is BuilderStatus.FAILED:
            raise RecipeFailed(f"the recipe {spec.recipe.name if spec.recipe else ''} failed on the builder: {detail}",
                               hint="read builder/recipe.log in the state folder; `releasectl builder down` removes it")
        return builder

    def _sweep(self) -> None:
        for entry in self.root.parent.glob(".builder-*"):
            pid = entry.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and not procs.pid_is_running(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)

    def _fill(self, tree: Path, image_id: str | None) -> None:
        if image_id is not None:
            try:
                self.unpack(image_id, tree)
            except NotFound:
                raise UsageError(f"no image {image_id[:80]!r} of this app to bring the builder up from",
                                 hint="pass a version, an image id from `releasectl images`, or `--from base`") from None
            return
        if not self.base.is_dir():
            raise ConfigError(f"the local builder folder {self.base} does not exist",
                              hint="create it (releasectl init copies a sample app) or set local.builder")
        exclude = self.exclude

        def ignore(folder: str, names: list[str]) -> set[str]:
            skipped = set(SKIP(folder, names))
            return skipped | {n for n in names if (Path(folder) / n).resolve() == exclude}

        shutil.copytree(self.base, tree, ignore=ignore, symlinks=True)

    def _run(self, script: str, folder: Path, timeout: float, recipe: Recipe) -> tuple[BuilderStatus, str]:
        """Run the script in the tree; (READY, "") when it exits 0 within the timeout, else (FAILED, why)."""
        (folder / "recipe.sh").write_text(script)
        log_path = folder / "recipe.log"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder / "tree"), "LANG": "C.UTF-8",
               "RELEASECTL_BUILDER": str(folder / "tree")}
        with open(log_path, "ab") as log:
            child = subprocess.Popen(  # noqa: S603 - the user's own recipe, on the user's machine
                [sys.executable, "-c", _LEADER, str(os.getpid()), "bash", "-e", str(folder / "recipe.sh")], cwd=folder / "tree", env=env,
                stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            )
            try:
                code = child.wait(timeout=timeout)
            except BaseException as exc:  # the timeout, or a signal: the recipe and its children go
                os.killpg(child.pid, 9)
                child.wait()
                if not isinstance(exc, subprocess.TimeoutExpired):
                    raise
                code = None
            marker = f"{RECIPE_DONE}\n" if code == 0 else f"{RECIPE_FAILED} {code if code is not None else 'timeout'}\n"
            log.write(marker.encode())
        if code == 0:
            return BuilderStatus.READY, ""
        why = f"it did not finish within {timeout:g}s" if code is None else f"it exited {code}"
        output = procs.tail(log_path, lines=10, max_chars=1000)
        return BuilderStatus.FAILED, f"{recipe.name}: {why}; its output ends with:\n{output}"

    def down(self) -> bool:
        if not self.root.exists():
            return False
        gone = self.root.parent / f".builder-down-{secrets.token_hex(3)}-{os.getpid()}"
        os.rename(self.root, gone)
        fsync_dir(self.root.parent)
        shutil.rmtree(gone, ignore_errors=True)
        return True
