"""The image store: one folder per image under `<state_dir>/images/`, shared by all environments.

    images/img-3f9c0a1b2c4d/
        image.tar.gz      the builder folder, snapshotted
        manifest.json     id, app, name, version, sha256, size, created_at, source, created_by, protected,
                          labels (each with the releasectl_ prefix), archive_mtime_ns

A bake writes into `images/.tmp-<id>-<pid>/` and renames it into place, so an interrupted bake leaves only a
hidden temp folder that is never listed and is swept by the next bake. Manifest changes are atomic
(temp file + os.replace).

Integrity: `create_server` (through `unpack`) and `verify` re-hash the archive and refuse a mismatch. list/get
stay cheap: they stat the archive and report FAILED when it is missing or its size changed; only when its
mtime moved since the bake do they re-hash it (once per provider instance) to decide.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import releasectl
from releasectl.errors import ConfigError, Conflict, DamagedState, NotFound, ProviderError, ResourceFailure
from releasectl.logs import Logger
from releasectl.providers.base import LABEL_PREFIX, ImageStatus, Label

from . import procs
from .files import flocked, fsync_dir, quarantine, read_json, write_json

if TYPE_CHECKING:
    import tarfile

    from releasectl.providers.base import Image

log = Logger("releasectl.providers.local")

ARCHIVE = "image.tar.gz"
MANIFEST = "manifest.json"
MAX_MEMBERS = 100_000  # entries in one image archive
MAX_UNPACKED_BYTES = 4 << 30  # content of one image archive once unpacked
TEMP_MAX_AGE = 300.0  # seconds after which a temp leftover is swept even if its baker may still live
_ID = re.compile(r"img-[0-9a-f]{12}")
MANIFEST_SCHEMA = {
    "id": (str,),
    "app": (str,),
    "name": (str, None),
    "version": (str,),
    "sha256": (str,),
    "size": (int,),
    "archive_mtime_ns": (int, None),
    "created_at": (int, float, None),
    "source": (str, None),
    "protected": (bool, None),
    "labels": (dict, None),
}
_SKIP_NAMES = {"__pycache__", ".git", ".hg", ".svn", ".releasectl", ".pytest_cache", ".mypy_cache"}


def _sha256(path: Path) -> str:
    import hashlib  # here and below: `status` and `images` neither hash, name, remove nor unpack

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_members(archive: Path, tar: tarfile.TarFile) -> None:
    """Refuse, before anything is extracted, what an image never holds: absolute or `..` paths, links
    that leave the image, device files and FIFOs, more than MAX_MEMBERS entries or MAX_UNPACKED_BYTES of
    content (a tar bomb is stopped at the first header past the bound, not after inflating it)."""
    count = total = 0
    for info in tar:
        count += 1
        total += info.size if info.isreg() else 0
        name = info.name
        why = None
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            why = "has an absolute path"
        elif ".." in Path(name).parts:
            why = "climbs out with '..'"
        elif info.ischr() or info.isblk() or info.isfifo() or not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
            why = "is a device file or FIFO"
        elif info.issym() or info.islnk():
            target = info.linkname
            base = Path(name).parent if info.issym() else Path(".")
            if target.startswith("/") or not _inside(base / target):
                why = f"links outside the image ({target!r})"
        if why is None and count > MAX_MEMBERS:
            why = f"is entry {count}: more than the {MAX_MEMBERS} an image may hold"
        if why is None and total > MAX_UNPACKED_BYTES:
            why = f"takes the content past {MAX_UNPACKED_BYTES} bytes"
        if why is not None:
            raise DamagedState(
                str(archive), f"member {name[:80]!r} {why}",
                hint="this archive was not made by `releasectl bake`: delete the image and bake the version again",
            )


def _inside(path: Path) -> bool:
    """Whether a relative path stays inside its root once '..' is resolved."""
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return False
    return True


def _unprefix(labels: Mapping[str, str]) -> dict[str, str]:
    return {k[len(LABEL_PREFIX) :]: v for k, v in labels.items() if k.startswith(LABEL_PREFIX)}


class ImageStore:
    def __init__(self, root: Path, app: str, *, exclude: Path | None = None) -> None:
        self.root = root
        self.app = app
        self.exclude = exclude.resolve() if exclude is not None else None  # never archive the state dir
        self._verified: dict[tuple[str, int, int, int], bool] = {}

    # ---- reading --------------------------------------------------------------------------------------

    def _dir(self, image_id: str) -> Path | None:
        if not _ID.fullmatch(image_id or ""):
            return None
        return self.root / image_id

    def _manifest(self, image_id: str) -> dict | None:
        """The manifest of this app's image, or None. A damaged one raises DamagedState."""
        d = self._dir(image_id)
        if d is None:
            return None
        m = read_json(d / MANIFEST, MANIFEST_SCHEMA)
        if m is None or m.get("app") != self.app:
            return None
        if m.get("id") != image_id:
            raise DamagedState(str(d / MANIFEST), f"names image {str(m.get('id'))[:40]!r}, not {image_id}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in m.get("labels", {}).items()):
            raise DamagedState(str(d / MANIFEST), "has a label that is not a string")
        return m

    def _damaged(self, image_id: str, exc: DamagedState) -> Image:
        """One image whose manifest is unreadable: listed FAILED, marked damaged, the others unaffected."""
        from releasectl.providers.base import Image  # here and in _to_image: `status` makes no Image

        return Image(
            id=image_id, name=image_id, app=self.app, version="", status=ImageStatus.FAILED, created_at=0.0,
            labels={Label.DAMAGED: exc.what},
        )

    def _owned_or_damaged(self, image_id: str) -> Image | None:
        try:
            m = self._manifest(image_id)
        except DamagedState as exc:
            log.info("%s", exc)
            return self._damaged(image_id, exc)
        return None if m is None else self._to_image(m)

    def damaged(self) -> list[tuple[str, DamagedState]]:
        """(image id, damage) of every image folder whose manifest is unreadable."""
        out = []
        if self.root.is_dir():
            for entry in sorted(self.root.iterdir()):
                if entry.name.startswith(".") or self._dir(entry.name) is None:
                    continue
                try:
                    self._manifest(entry.name)
                except DamagedState as exc:
                    out.append((entry.name, exc))
        return out

    def quarantine(self, image_id: str, vault: Path) -> str:
        """Move a damaged image's folder aside into `vault`."""
        d = self._dir(image_id)
        if d is None or not d.exists():
            raise NotFound(f"image {image_id} does not exist")
        return str(quarantine(d, vault))

    def _status(self, image_id: str, m: dict) -> ImageStatus:
        """Cheap integrity check: stat, and re-hash only when the archive's mtime moved since the bake."""
        archive = self.root / image_id / ARCHIVE
        try:
            st = archive.stat()
        except OSError:
            return ImageStatus.FAILED
        if st.st_size != m.get("size"):
            return ImageStatus.FAILED
        if st.st_mtime_ns == m.get("archive_mtime_ns"):
            return ImageStatus.ACTIVE
        key = (image_id, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self._verified:
            self._verified[key] = _sha256(archive) == m.get("sha256")
        return ImageStatus.ACTIVE if self._verified[key] else ImageStatus.FAILED

    def _to_image(self, m: dict, status: ImageStatus | None = None) -> Image:
        from releasectl.providers.base import Image

        return Image(
            id=m["id"],
            name=m.get("name", ""),
            app=m["app"],
            version=m.get("version", ""),
            status=status or self._status(m["id"], m),
            created_at=float(m.get("created_at", 0.0)),
            size=m.get("size"),
            checksum=m.get("sha256"),
            source=m.get("source", ""),
            protected=bool(m.get("protected", False)),
            labels=_unprefix(m.get("labels", {})),
        )

    def list(self) -> list[Image]:
        if not self.root.is_dir():
            return []
        out = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue  # temp and deleted leftovers are hidden
            image = self._owned_or_damaged(entry.name)
            if image is not None:
                out.append(image)
        return out

    def get(self, image_id: str) -> Image | None:
        return self._owned_or_damaged(image_id)

    def archive_path(self, image_id: str) -> Path:
        return self.root / image_id / ARCHIVE

    # ---- integrity ------------------------------------------------------------------------------------

    def verify(self, image_id: str) -> Image:
        """Re-hash the archive against the manifest. Returns the image ACTIVE, or raises DamagedState on a
        mismatch (ResourceFailure when unreadable, NotFound when there is no such image)."""
        m = self._manifest(image_id)
        if m is None:
            raise NotFound(f"image {image_id} does not exist for app {self.app}")
        archive = self.root / image_id / ARCHIVE
        label = f"image {image_id} ({m.get('name') or m.get('version')})"
        try:
            digest = _sha256(archive)
        except OSError as exc:
            raise ResourceFailure(f"{label}: cannot read its archive: {exc}") from exc
        if digest != m.get("sha256"):
            raise DamagedState(
                str(archive),
                f"{label} failed its integrity check: archive sha256 {digest[:16]}... does not match the "
                f"manifest's {str(m.get('sha256'))[:16]}...",
                hint="the archive was changed after the bake; delete the image and bake the version again",
            )
        st = archive.stat()
        self._verified[(image_id, st.st_ino, st.st_size, st.st_mtime_ns)] = True
        return self._to_image(m, ImageStatus.ACTIVE)

    def unpack(self, image_id: str, dest: Path) -> Image:
        """Verify, check every member is harmless and the whole is bounded, then extract the archive into
        `dest` (created; must not exist). A hostile archive is DamagedState and nothing is extracted."""
        import tarfile  # here: `status` and `images` never open an archive
        import zlib

        image = self.verify(image_id)
        archive = self.root / image_id / ARCHIVE
        try:
            with tarfile.open(archive, "r:gz") as tar:
                check_members(archive, tar)
            dest.mkdir(parents=True)
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(dest, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise ResourceFailure(f"image {image_id}: cannot unpack its archive: {exc}") from exc
        return image

    # ---- writing --------------------------------------------------------------------------------------

    def sweep(self, max_age: float = TEMP_MAX_AGE) -> list[str]:
        """Remove temp leftovers of interrupted bakes and deletes: older than max_age, or whose baker is
        dead. Returns the names removed."""
        import shutil

        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        now = time.time()
        for entry in self.root.iterdir():
            if not (entry.name.startswith(".tmp-") or entry.name.startswith(".del-")) or not entry.is_dir():
                continue
            try:
                age = now - entry.stat().st_mtime
            except FileNotFoundError:
                continue
            pid_text = entry.name.rsplit("-", 1)[-1]
            owner_dead = pid_text.isdigit() and int(pid_text) != os.getpid() and not procs.pid_is_running(int(pid_text))
            if age > max_age or owner_dead or entry.name.startswith(".del-"):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        if removed:
            log.info("swept %d leftover image folder(s): %s", len(removed), ", ".join(removed))
        return removed

    def _archive_filter(self, info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if any(p in _SKIP_NAMES for p in parts) or info.name.endswith((".pyc", ".pyo")):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def bake(self, builder: Path, version: str, name: str, labels: Mapping[str, str]) -> Image:
        self.root.mkdir(parents=True, exist_ok=True)
        with flocked(self.root / ".bake.lock"):  # two bakes of one version never both publish
            return self._bake(builder, version, name, labels)

    def _bake(self, builder: Path, version: str, name: str, labels: Mapping[str, str]) -> Image:
        import secrets
        import shutil

        builder = builder.resolve()
        if not builder.is_dir():
            raise ConfigError(
                f"the local builder folder {builder} does not exist",
                hint="create it (releasectl init copies a sample app) or set local.builder in releasectl.yaml",
            )
        for existing in self.list():
            if existing.version == version and existing.status is not ImageStatus.FAILED:
                raise Conflict(
                    f"an image of {self.app} {version} already exists ({existing.id})",
                    hint="delete it first to bake the version again",
                )
        import tarfile  # here: `status` and `images` never open an archive

        self.sweep()
        image_id = f"img-{secrets.token_hex(6)}"
        tmp = self.root / f".tmp-{image_id}-{os.getpid()}"
        tmp.mkdir()
        try:
            archive = tmp / ARCHIVE
            exclude = self.exclude

            def filt(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
                if exclude is not None and (builder / info.name).resolve(strict=False) == exclude:
                    return None
                return self._archive_filter(info)

            with tarfile.open(archive, "w:gz") as tar:
                tar.add(builder, arcname=".", filter=filt)
            with open(archive, "rb+") as f:
                os.fsync(f.fileno())
            st = archive.stat()
            all_labels = {f"{LABEL_PREFIX}{k}": str(v) for k, v in labels.items() if v is not None}
            all_labels.update(
                {
                    f"{LABEL_PREFIX}{Label.APP}": self.app,
                    f"{LABEL_PREFIX}{Label.VERSION}": version,
                    f"{LABEL_PREFIX}{Label.SOURCE}": str(builder),
                    f"{LABEL_PREFIX}{Label.CREATED_BY}": releasectl.__version__,
                }
            )
            manifest = {
                "format": 1,
                "id": image_id,
                "app": self.app,
                "name": name,
                "version": version,
                "sha256": _sha256(archive),
                "size": st.st_size,
                "archive_mtime_ns": st.st_mtime_ns,
                "created_at": time.time(),
                "source": str(builder),
                "created_by": releasectl.__version__,
                "protected": False,
                "labels": all_labels,
            }
            write_json(tmp / MANIFEST, manifest)
            os.rename(tmp, self.root / image_id)
            fsync_dir(self.root)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError):
                raise ProviderError(f"baking {self.app} {version} failed: {exc}") from exc
            raise
        log.info("baked image %s (%s %s, %d bytes)", image_id, self.app, version, manifest["size"])
        return self._to_image(manifest, ImageStatus.ACTIVE)

    def update(
        self, image_id: str, *, labels: Mapping[str, str | None] | None = None, protected: bool | None = None
    ) -> Image:
        m = self._manifest(image_id)
        if m is None:
            raise NotFound(f"image {image_id} does not exist for app {self.app}")
        stored = dict(m.get("labels", {}))
        for key, value in (labels or {}).items():
            if value is None:
                stored.pop(f"{LABEL_PREFIX}{key}", None)
            else:
                stored[f"{LABEL_PREFIX}{key}"] = str(value)
        m["labels"] = stored
        if protected is not None:
            m["protected"] = bool(protected)
        write_json(self.root / image_id / MANIFEST, m)
        return self._to_image(m)

    def delete(self, image_id: str) -> None:
        import secrets
        import shutil

        try:
            m = self._manifest(image_id)
        except DamagedState:
            m = {"damaged": True}  # its folder is this app's image folder: it can go
        if m is None:
            return
        if m.get("protected"):
            self.update(image_id, protected=False)
        gone = self.root / f".del-{image_id}-{secrets.token_hex(3)}-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.root / image_id, gone)  # atomic: it stops being listed here
            fsync_dir(self.root)
        shutil.rmtree(gone, ignore_errors=True)
        log.info("deleted image %s", image_id)
