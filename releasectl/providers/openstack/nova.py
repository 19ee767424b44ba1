"""Nova (compute v2.1): servers, metadata, createImage and flavors, as explicit functions.

One microversion is pinned for the whole run: `PINNED` (2.52: `networks` required, createImage answers
with `image_id`, server tags accepted) or the cloud's maximum if that is lower. Nova's `name` filter is an
unanchored regular expression, so it is only used anchored and escaped, to reconcile an ambiguous create;
servers are otherwise found by their metadata, filtered client-side (non-admins have no metadata filter).
"""

from __future__ import annotations

import re
from typing import Any, Iterator
from urllib.parse import urlsplit

from releasectl.errors import NotFound, ProviderError

from .http import ServiceClient

PINNED = (2, 52)
IMAGE_ID_IN_BODY = (2, 45)
PAGE = 1000


def _parse_mv(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    major, _, minor = str(text).partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return None


class Nova(ServiceClient):
    service_type = "compute"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mv: tuple[int, int] | None = None
        self._flavors: list[dict[str, Any]] | None = None

    @property
    def microversion(self) -> tuple[int, int]:
        """min(PINNED, the cloud's maximum), discovered once from the version document."""
        if self._mv is None:
            resp = self.transport.request(self.service_type, "GET", self.url + "/", allow=(300, 404), token=self.token)
            top: Any = None
            if resp.status_code in (200, 300):
                try:
                    top = resp.json()
                except ValueError:
                    top = None
            doc = (top or {}).get("version") if isinstance(top, dict) else None
            if doc is None and isinstance(top, dict) and isinstance(top.get("versions"), list):
                doc = next((v for v in top["versions"] if str(v.get("id", "")).startswith("v2.1")), None)
            highest = _parse_mv((doc or {}).get("version")) if isinstance(doc, dict) else None
            self._mv = min(PINNED, highest) if highest else (2, 1)
        return self._mv

    def headers(self) -> dict[str, str]:
        mv = self.microversion
        if mv <= (2, 1):
            return {}
        return {"OpenStack-API-Version": f"compute {mv[0]}.{mv[1]}"}

    # ---- servers --------------------------------------------------------------------------------------

    def relocated(self) -> None:
        self._mv = None  # discovered again from the new endpoint

    def iter_servers(self, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every server of /servers/detail, all pages."""
        return self.pages("/servers/detail", key="servers", params={"limit": PAGE, **(params or {})})

    def find_by_name(self, name: str) -> list[dict[str, Any]]:
        """Servers named exactly `name` (the filter is a regex: anchored and escaped here)."""
        pattern = "^" + re.escape(name) + "$"
        return [s for s in self.iter_servers({"name": pattern}) if s.get("name") == name]

    def get_server(self, server_id: str) -> dict[str, Any] | None:
        data = self.get_json(f"/servers/{server_id}")
        return None if data is None else data["server"]

    def create_server(self, body: dict[str, Any]) -> str:
        """POST /servers (never retried here: the caller reconciles an UncertainWrite). Returns the id."""
        resp = self.call("POST", "/servers", json={"server": body})
        return resp.json()["server"]["id"]

    def delete_server(self, server_id: str) -> bool:
        """False when it was already gone."""
        resp = self.call("DELETE", f"/servers/{server_id}", allow=(404,))
        return resp.status_code != 404

    def set_metadata(self, server_id: str, metadata: dict[str, str]) -> dict[str, str] | None:
        """Merge (upsert) metadata items; returns the server's whole metadata after the merge (Nova's answer)."""
        resp = self.call("POST", f"/servers/{server_id}/metadata", json={"metadata": metadata}, idempotent=True)
        try:
            merged = resp.json().get("metadata")
        except ValueError:
            return None
        return dict(merged) if isinstance(merged, dict) else None

    def delete_metadata(self, server_id: str, key: str) -> None:
        self.call("DELETE", f"/servers/{server_id}/metadata/{key}", allow=(404,))

    def create_image(self, server_id: str, name: str, metadata: dict[str, str]) -> str:
        """createImage; the new image id from the body (MV >= 2.45) or the Location header."""
        resp = self.call("POST", f"/servers/{server_id}/action", json={"createImage": {"name": name, "metadata": metadata}})
        image_id = None
        if resp.content:
            try:
                image_id = resp.json().get("image_id")
            except (ValueError, AttributeError):
                image_id = None
        if not image_id:
            location = resp.headers.get("Location", "")
            image_id = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1] if location else None
        if not image_id:
            raise ProviderError(f"compute: createImage on {server_id} answered without an image id or Location")
        return image_id

    # ---- flavors ----------------------------------------------------------------------------------------

    def flavor(self, ref: str) -> dict[str, Any]:
        """The flavor (vcpus, ram, disk...) that flavor_id resolves `ref` to."""
        flavor_id = self.flavor_id(ref)
        return next(f for f in self._flavors or [] if f.get("id") == flavor_id)

    def flavor_id(self, ref: str) -> str:
        """A flavor by id or name (matched client-side: the name filter needs MV 2.102)."""
        if self._flavors is None:
            self._flavors = self.call("GET", "/flavors/detail").json().get("flavors", [])
        for flavor in self._flavors:
            if flavor.get("id") == ref:
                return ref
        named = [f for f in self._flavors if f.get("name") == ref]
        if len(named) == 1:
            return str(named[0]["id"])
        if len(named) > 1:
            raise ProviderError(f"several flavors are named {ref!r}: use its id in openstack.flavor")
        known = ", ".join(sorted(str(f.get("name")) for f in self._flavors))
        raise NotFound(f"no flavor {ref!r} (flavors: {known})", hint="fix openstack.flavor")
