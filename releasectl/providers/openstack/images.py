"""Images: bake (a Nova snapshot of the builder server), list, label, protect and delete Glance images.

releasectl's images carry the tag `releasectl` and the property `releasectl_app`; a snapshot in progress
carries a random `releasectl_bake` marker too, which is how an unanswered createImage is recognised (no
duplicate snapshot) and how the leftovers of an interrupted bake are found.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Mapping

from releasectl.errors import ConfigError, Conflict, NotFound, ReleasectlError, ResourceFailure, UsageError
from releasectl.providers.base import LABEL_PREFIX as P
from releasectl.providers.base import Image, Label

from .glance import Glance
from .http import create_then_find
from .neutron import looks_like_id
from .nova import Nova
from .status import IMAGE_FAILED, Poll, image_status, wait_for_status
from .values import check_meta, epoch, labels_of

log = logging.getLogger("releasectl.providers.openstack.images")

IMAGE_TAG = "releasectl"
LISTED_FRESH = 2.0  # seconds a listing stands in for a GET of one of its images before a label change
BAKE_MARKER = "bake"  # label: a random token per snapshot, to recognise it after an unanswered createImage


def checksum_of(d: Mapping[str, Any]) -> str | None:
    """Glance's multihash: plain hex for sha256 (what the local provider reports), `<algo>:<hex>` for any
    other algorithm (a default Glance hashes with sha512), None when the image has no data yet."""
    algo, value = d.get("os_hash_algo"), d.get("os_hash_value")
    if not algo or not value:
        return None
    return str(value) if algo == "sha256" else f"{algo}:{value}"


def to_image(d: Mapping[str, Any]) -> Image:
    labels = labels_of(d)
    return Image(
        id=str(d["id"]),
        name=str(d.get("name") or ""),
        app=labels.get(Label.APP, ""),
        version=labels.get(Label.VERSION, ""),
        status=image_status(d.get("status")),
        created_at=epoch(d.get("created_at")),
        size=d.get("size"),
        checksum=checksum_of(d),
        source=labels.get(Label.SOURCE, ""),
        protected=bool(d.get("protected")),
        labels=labels,
    )


class Images:
    """The images of one app, baked from its builder server."""

    def __init__(self, nova: Nova, glance: Glance, *, app: str, builder: str | None, timeout: float, poll: Poll) -> None:
        self.nova = nova
        self.glance = glance
        self.app = app
        self.builder_ref = builder
        self.timeout = timeout  # snapshot_timeout
        self.poll = poll
        self._listed: tuple[float, dict[str, dict[str, Any]]] | None = None  # the last listing, by id, and when

    def list(self) -> list[Image]:
        found = list(self.glance.iter_images([(P + Label.APP, self.app), ("tag", IMAGE_TAG)]))
        self._listed = (self.poll.clock.monotonic(), {str(d["id"]): d for d in found})
        return [to_image(d) for d in found]

    def _recent(self, image_id: str) -> dict[str, Any] | None:
        """The image as a listing a moment ago showed it (labels are set right after a listing), else None."""
        if self._listed is None or self.poll.clock.monotonic() - self._listed[0] > LISTED_FRESH:
            return None
        return self._listed[1].get(image_id)

    def get(self, image_id: str) -> Image | None:
        d = self.glance.get_image(image_id)
        return None if d is None else to_image(d)

    def _builder(self) -> dict[str, Any]:
        ref = self.builder_ref
        if not ref:
            raise ConfigError("openstack.builder is not set: it is needed to bake images (the server to snapshot)")
        if looks_like_id(ref):
            server = self.nova.get_server(ref)
            if server is not None:
                return server
        named = [s for s in self.nova.find_by_name(ref) if s.get("OS-EXT-STS:task_state") != "deleting"]
        if not named:
            raise ConfigError(f"no builder server {ref!r} in this project", hint="fix openstack.builder (a server name or id)")
        if len(named) > 1:
            raise UsageError(f"several servers are named {ref!r}", hint="set openstack.builder to the server's id")
        return named[0]

    def _builder_idle(self, server_id: str, name: str) -> None:
        """Wait until the builder has no task running (createImage 409s otherwise)."""

        def failed(s: Mapping[str, Any]) -> ResourceFailure | None:
            if str(s.get("status")).upper() != "ERROR":
                return None
            return ResourceFailure(f"the builder server {name} is in ERROR: {(s.get('fault') or {}).get('message', 'no reason given')}")

        wait_for_status(
            lambda: self.nova.get_server(server_id), what=f"builder {name} to finish its current task",
            timeout=self.timeout, poll=self.poll, done=lambda s: s.get("OS-EXT-STS:task_state") in (None, ""),
            failed=failed, missing=lambda: ResourceFailure(f"the builder server {name} ({server_id}) is gone"),
        )

    def _clean_leftovers(self, version: str) -> None:
        """Unfinished snapshots of this version from an interrupted bake, tagged or not."""
        for d in self.glance.iter_images([(P + Label.APP, self.app), (P + Label.VERSION, version)]):
            leftover = P + BAKE_MARKER in d and (d.get("status") != "active" or IMAGE_TAG not in (d.get("tags") or []))
            if leftover:
                log.info("removing the unfinished image %s (%s) of an interrupted bake", d.get("name"), d["id"])
                self.delete(str(d["id"]))

    def bake(self, version: str, name: str, labels: Mapping[str, str], builder: Mapping[str, Any] | None = None) -> Image:
        """Snapshot `builder` (the builder from code, when it is up) or the configured `openstack.builder`."""
        builder = builder or self._builder()
        builder_id, builder_name = str(builder["id"]), str(builder.get("name"))
        self._clean_leftovers(version)
        marker = secrets.token_hex(8)
        meta = {P + k: str(v) for k, v in labels.items() if v is not None}
        meta.update({
            P + Label.APP: self.app,
            P + Label.VERSION: version,
            P + Label.SOURCE: f"server {builder_name} ({builder_id})",
            P + BAKE_MARKER: marker,
        })
        check_meta(meta)

        def find() -> str | None:
            found = list(self.glance.iter_images([(P + BAKE_MARKER, marker)]))
            return str(found[0]["id"]) if found else None

        image_id = create_then_find(
            lambda: self.nova.create_image(builder_id, name, meta), find, what=f"snapshot {name}",
            before=lambda: self._builder_idle(builder_id, builder_name), on_conflict="retry",
        )
        try:
            final = wait_for_status(
                lambda: self.glance.get_image(image_id), what=f"snapshot {name} to become active",
                timeout=self.timeout, poll=self.poll,
                done=lambda d: str(d.get("status", "")).lower() == "active",
                failed=lambda d: ResourceFailure(f"the snapshot {name} ({image_id}) is {d.get('status')}", hint="bake again")
                if str(d.get("status", "")).lower() in IMAGE_FAILED else None,
                missing=lambda: ResourceFailure(
                    f"the snapshot {name} ({image_id}) vanished while it was being saved: Nova deletes the image of a "
                    "failed snapshot",
                    hint="see `openstack server event list` for the builder, and bake again",
                ),
            )
            # tagged (listed as baked) only once complete: a snapshot left by a bake that failed after this
            # point's delete also failed stays untagged, and the next bake removes it instead of refusing
            # "already baked"
            self.glance.add_tag(image_id, IMAGE_TAG)
        except BaseException:
            try:
                self.delete(image_id)
            except ReleasectlError as exc:
                log.warning("could not remove the failed snapshot %s: %s", image_id, exc)
            raise
        assert final is not None
        return to_image(final)

    def update(self, image_id: str, *, labels: Mapping[str, str | None] | None = None, protected: bool | None = None) -> Image:
        for attempt in range(2):
            # the patch is computed from the image as just listed (no GET); a 409 reads it again
            d = (self._recent(image_id) if not attempt else None) or self.glance.get_image(image_id)
            if d is None:
                raise NotFound(f"image {image_id} does not exist")
            ops: list[dict[str, Any]] = []
            for key, value in (labels or {}).items():
                prop = P + key
                if value is None:
                    if prop in d:
                        ops.append({"op": "remove", "path": "/" + prop})
                else:
                    ops.append({"op": "add", "path": "/" + prop, "value": str(value)})
            if protected is not None and bool(d.get("protected")) != protected:
                ops.append({"op": "replace", "path": "/protected", "value": bool(protected)})
            if not ops:
                return to_image(d)
            try:
                patched = self.glance.patch(image_id, ops)
                if self._listed is not None and image_id in self._listed[1]:
                    self._listed[1][image_id] = patched
                return to_image(patched)
            except Conflict:  # a property we remove vanished meanwhile: read again
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def delete(self, image_id: str) -> None:
        d = self.glance.get_image(image_id)
        if d is None:
            return
        if d.get("protected"):
            self.glance.patch(image_id, [{"op": "replace", "path": "/protected", "value": False}])
        self.glance.delete(image_id)
