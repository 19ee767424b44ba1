"""Glance v2: images by property and tag, JSON-patch updates, tags, delete.

The catalog URL is unversioned (`https://host:9292`, `https://host/image`): `/v2/...` is appended, after
stripping a stray trailing `/v2`. A list's `next` link is relative to that root. Any query key Glance does not
know is an exact-match custom-property filter, which is how releasectl's images are found
(`?releasectl_app=web&tag=releasectl`). Listing hides killed and deleted images.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from .http import ServiceClient

PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
PAGE = 200


class Glance(ServiceClient):
    service_type = "image"

    def root(self, endpoint: str) -> str:
        url = endpoint.rstrip("/")
        if url.endswith("/v2"):
            url = url[: -len("/v2")]
        return url

    def iter_images(self, params: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        """Every image matching the filters, all pages."""
        return self.pages("/v2/images", key="images", params=[*params, ("limit", str(PAGE))])

    def get_image(self, image_id: str) -> dict[str, Any] | None:
        return self.get_json(f"/v2/images/{image_id}")

    def patch(self, image_id: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        """JSON-patch; `add` upserts. Safe to repeat: each op states the end value."""
        resp = self.call(
            "PATCH", f"/v2/images/{image_id}", data=json.dumps(ops).encode(),
            headers={"Content-Type": PATCH_TYPE}, idempotent=True,
        )
        return resp.json()

    def add_tag(self, image_id: str, tag: str) -> None:
        self.call("PUT", f"/v2/images/{image_id}/tags/{tag}")

    def delete(self, image_id: str) -> bool:
        """False when it was already gone. A protected image answers 403: unprotect first."""
        resp = self.call("DELETE", f"/v2/images/{image_id}", allow=(404,))
        return resp.status_code != 404
