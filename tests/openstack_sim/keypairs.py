"""Nova keypairs (``/os-keypairs``), a service of its own so it grows apart from ``nova.py``.

It shares Nova's URL root, microversions, headers and error format (it delegates to ``ctx.nova``);
the dispatcher routes by the longest prefix, so ``/compute/v2.1/os-keypairs`` lands here. Faithful
where clients look: create answers 200 before microversion 2.2 and 201 from it, delete 202 then 204,
a duplicate name is 409, a key that does not parse is 400, the list wraps each item in ``keypair``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from .server import ApiError, Request, Response, Service, empty_response, json_response
from .state import iso

NAME = re.compile(r"^[A-Za-z0-9 _.@-]{1,255}$")
KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "ssh-dss")


def fingerprint(public_key: str) -> str:
    """The MD5 colon-hex fingerprint Nova shows; raises ValueError when the key does not parse."""
    parts = public_key.strip().split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise ValueError("not an OpenSSH public key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key body is not base64") from None
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


class Keypairs(Service):
    name = "compute"
    prefix = "/compute/v2.1/os-keypairs"

    def register(self) -> None:
        self.add("GET", "/", self.list_keypairs)
        self.add("POST", "/", self.create_keypair)
        self.add("GET", "/{name}", self.show_keypair)
        self.add("DELETE", "/{name}", self.delete_keypair)

    def resolve(self, req: Request) -> Any:
        """Journal under Nova's own templates (``/v2.1/os-keypairs/{name}``)."""
        try:
            return super().resolve(req)
        finally:
            req.template = "/v2.1/os-keypairs" + ("" if req.template in (None, "/") else req.template)

    def prepare(self, req: Request) -> None:
        self.ctx.nova.prepare(req)

    def finish(self, req: Request, resp: Response) -> None:
        self.ctx.nova.finish(req, resp)
        resp.headers.setdefault("x-openstack-request-id", req.request_id)

    def render_error(self, req: Request, err: ApiError) -> Response:
        return self.ctx.nova.render_error(req, err)

    def _render(self, kp: dict, detail: bool, mv: tuple[int, int]) -> dict:
        out = {"name": kp["name"], "public_key": kp["public_key"], "fingerprint": kp["fingerprint"]}
        if mv >= (2, 2):
            out["type"] = kp["type"]
        if detail:
            out.update(user_id=kp["user_id"], created_at=kp["created_at"], deleted=False, deleted_at=None,
                       updated_at=None, id=kp["seq"])
        return out

    def list_keypairs(self, req: Request) -> Response:
        mv = req.microversion or (2, 1)
        with self.ctx.store.lock:
            items = sorted(self.ctx.store.keypairs.values(), key=lambda k: k["name"])
            return json_response(200, {"keypairs": [{"keypair": self._render(k, False, mv)} for k in items]})

    def _get(self, name: str) -> dict:
        kp = self.ctx.store.keypairs.get(name)
        if kp is None:
            raise ApiError(404, f"Keypair {name} not found for user {self.ctx.keystone.user['id']}")
        return kp

    def show_keypair(self, req: Request, name: str) -> Response:
        with self.ctx.store.lock:
            return json_response(200, {"keypair": self._render(self._get(name), True, req.microversion or (2, 1))})

    def create_keypair(self, req: Request) -> Response:
        mv = req.microversion or (2, 1)
        body = req.json()
        spec = body.get("keypair") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise ApiError(400, "Invalid input for field/attribute keypair. 'keypair' is a required property")
        name, public_key = spec.get("name"), spec.get("public_key")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ApiError(400, f"Invalid input for field/attribute name. Value: {name!r}.")
        if not isinstance(public_key, str):
            raise ApiError(400, "openstack_sim does not generate keys: send public_key (generation was removed in "
                                "microversion 2.92 anyway).")
        try:
            fp = fingerprint(public_key)
        except ValueError as exc:
            raise ApiError(400, f"Keypair data is invalid: failed to generate fingerprint ({exc})") from None
        key_type = spec.get("type", "ssh")
        if mv < (2, 2) and "type" in spec:
            raise ApiError(400, "Invalid input for field/attribute keypair. Additional properties are not allowed "
                                "('type' was unexpected)")
        if key_type not in ("ssh", "x509"):
            raise ApiError(400, f"Invalid input for field/attribute type. Value: {key_type!r}.")
        with self.ctx.store.lock:
            if name in self.ctx.store.keypairs:
                raise ApiError(409, f"Key pair '{name}' already exists.")
            kp = {"name": name, "public_key": public_key.strip(), "fingerprint": fp, "type": key_type,
                  "user_id": self.ctx.keystone.user["id"], "created_at": iso(self.ctx.now()),
                  "seq": self.ctx.store.next_seq()}
            self.ctx.store.keypairs[name] = kp
            return json_response(201 if mv >= (2, 2) else 200, {"keypair": self._render(kp, False, mv)})

    def delete_keypair(self, req: Request, name: str) -> Response:
        with self.ctx.store.lock:
            self._get(name)
            del self.ctx.store.keypairs[name]
        return empty_response(204 if (req.microversion or (2, 1)) >= (2, 2) else 202)
