"""Nova keypairs for `env up/down`: imported from the configured public key, named `<app>-<env>`.

Keypairs have no tags or metadata: the name is the owner mark (the one resource owned by name). A keypair
cannot change in place; the engine replaces it (delete, create) when the key file changes. A duplicate name
(409) after a lost answer is adopted when it holds the same key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from releasectl.errors import Conflict
from releasectl.providers.base import EnvKind, EnvResource

from .http import create_then_find
from .nova import Nova


class Keypairs:
    def __init__(self, nova: Nova) -> None:
        self.api = nova

    def _get(self, name: str) -> dict[str, Any] | None:
        data = self.api.get_json(f"/os-keypairs/{quote(name, safe='')}")
        return None if data is None else data.get("keypair")

    def observe(self, name: str) -> list[EnvResource]:
        kp = self._get(name)
        if kp is None:
            return []
        return [EnvResource(EnvKind.KEYPAIR, name, {"public_key": str(kp.get("public_key", "")).strip()},
                            id=name, attrs={"fingerprint": str(kp.get("fingerprint", ""))})]

    def create(self, r: EnvResource) -> EnvResource:
        key = r.spec["public_key"]

        def create() -> dict[str, Any]:
            return self.api.call("POST", "/os-keypairs", json={"keypair": {"name": r.name, "public_key": key}}).json()["keypair"]

        def find() -> dict[str, Any] | None:
            kp = self._get(r.name)
            if kp is not None and str(kp.get("public_key", "")).strip() != key.strip():
                raise Conflict(f"keypair {r.name!r} exists with another public key",
                               hint="delete it (`openstack keypair delete`) or let `env up` replace it after `env down`")
            return kp

        kp = create_then_find(create, find, what=f"keypair {r.name}", on_conflict="find")
        return EnvResource(EnvKind.KEYPAIR, r.name, {"public_key": key.strip()}, id=r.name,
                           attrs={"fingerprint": str(kp.get("fingerprint", ""))})

    def delete(self, r: EnvResource) -> None:
        self.api.call("DELETE", f"/os-keypairs/{quote(r.name, safe='')}", allow=(404,))


__all__ = ["Keypairs"]
