"""Swift (object-store), just what the records and the lock need.

`PUT` of an object replaces it whole (a reader sees the old or the new object, never half), and
`PUT` with `If-None-Match: *` creates it only if the name is free, else 412: that is the one atomic,
server-side primitive the lock is built on. Listings take a prefix and page with `marker`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from releasectl.errors import ProviderError

from .http import ServiceClient

PAGE = 1000


class ObjectStore(ServiceClient):
    service_type = "object-store"

    def __init__(self, *args: Any, container: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.container = container
        self._container_ok = False

    def _path(self, name: str) -> str:
        return f"/{quote(self.container, safe='')}/{quote(name, safe='/')}"

    def ensure_container(self) -> None:
        if not self._container_ok:
            self.call("PUT", f"/{quote(self.container, safe='')}", data=b"")
            self._container_ok = True

    def put(self, name: str, data: bytes, *, create_only: bool = False, content_type: str = "application/json") -> bool:
        """Store the object. With `create_only`, only if no object has that name: False when one has."""
        headers = {"Content-Type": content_type}
        if create_only:
            headers["If-None-Match"] = "*"
        for _ in range(2):
            resp = self.call("PUT", self._path(name), data=data, headers=headers, allow=(404, 412))
            if resp.status_code == 404:  # no container yet
                self._container_ok = False
                self.ensure_container()
                continue
            return resp.status_code != 412
        raise ProviderError(f"object-store: container {self.container!r} cannot be created or written")

    def create(self, name: str, data: bytes) -> bool:
        """Create-only PUT (`If-None-Match: *`): True if this call stored it, False if the name was taken.

        A 412 may hide our own success: a PUT whose answer was lost (a 5xx or a timeout after Swift stored it)
        is replayed by the transport and then finds its own object. So a 412 over an object holding exactly
        `data` counts as ours; callers make `data` unique (a token, an id) so that this cannot be someone else's.
        """
        if self.put(name, data, create_only=True):
            return True
        return self.get(name) == data

    def get(self, name: str) -> bytes | None:
        resp = self.call("GET", self._path(name), allow=(404,), headers={"Accept": "*/*"})
        return None if resp.status_code == 404 else resp.content

    def delete(self, name: str) -> None:
        self.call("DELETE", self._path(name), allow=(404,))

    def list(self, prefix: str) -> list[str]:
        """Names starting with `prefix`, in Swift's order (byte-wise); [] when the container is missing."""
        params = {"format": "json", "prefix": prefix, "limit": PAGE}
        listing = self.pages(f"/{quote(self.container, safe='')}", key=None, params=params, missing_ok=True)
        return [str(o["name"]) for o in listing if "name" in o]
