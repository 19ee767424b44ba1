"""The simulator's Nova snapshotting into the real Glance, as a real Nova does.

Nova comes from the simulator; images must live in the real Glance. A real Nova's createImage creates the
image record in Glance (queued, with the instance's and the request's properties) before it answers, then
uploads the snapshot's bytes, which makes Glance compute `checksum`, `os_hash_algo`/`os_hash_value` and go
active. `attach` makes the simulator's Nova do the same through the real Glance API, with the same image id as
the simulator's own record (which its Nova keeps to boot servers from: the port and version properties). A
snapshot that fails (the builder was deleted, or the `next_snapshot_vanish` fault) is deleted from Glance, as
Nova deletes a failed snapshot's image.
"""

from __future__ import annotations

from typing import Any

from .cloud import Session

# Glance's own attributes: never sent as properties
GLANCE_RESERVED = {"id", "name", "status", "container_format", "disk_format", "owner", "size", "virtual_size",
                   "checksum", "visibility", "protected", "created_at", "updated_at", "tags", "direct_url",
                   "locations", "self", "file", "schema", "min_disk", "min_ram", "os_hidden", "stores"}
SNAPSHOT_BYTES = 64 * 1024


def attach(sim: Any, session: Session, glance_url: str) -> None:
    """Wrap the simulator Nova's snapshot steps (its `_snapshot_record` and `_snapshot_done`)."""
    nova = sim.ctx.nova
    record, done = nova._snapshot_record, nova._snapshot_done
    images = f"{glance_url}/v2/images"

    def snapshot_record(server: Any, name: str, metadata: dict[str, str]) -> Any:
        image = record(server, name, metadata)
        body: dict[str, Any] = {"id": image.id, "name": name, "disk_format": "raw", "container_format": "bare",
                                "visibility": "private"}
        body.update({k: str(v) for k, v in image.properties.items()
                     if k not in GLANCE_RESERVED and not k.startswith(("os_hash", "os_glance"))})
        try:
            session.call("POST", images, json=body, ok=(201,))
        except BaseException:
            sim.ctx.glance.delete_record(image)
            raise
        return image

    def snapshot_done(server_id: str, image_id: str, vanish: bool) -> None:
        done(server_id, image_id, vanish)
        with sim.ctx.store.lock:
            shadow = sim.ctx.store.images.get(image_id)
            active = shadow is not None and shadow.status == "active"
        if active:
            seed = f"releasectl test snapshot {image_id} of server {server_id}\n".encode()
            data = (seed * (SNAPSHOT_BYTES // len(seed) + 1))[:SNAPSHOT_BYTES]
            session.call("PUT", f"{images}/{image_id}/file", data=data,
                         headers={"Content-Type": "application/octet-stream"}, ok=(204, 404, 409, 410))
        else:
            session.call("DELETE", f"{images}/{image_id}", ok=(204, 403, 404))

    nova._snapshot_record = snapshot_record
    nova._snapshot_done = snapshot_done
