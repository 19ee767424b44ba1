"""The builder from code on Nova: one server per app, `<app>-builder`, booted offline (never a pool member) from
an image of the app or `openstack.base_image`, with the recipe as cloud-init user data.

Found by its metadata `releasectl_builder=<app>` (it has no `releasectl_env`, so no environment lists it as
a server and `gc` never sees it). Its state is metadata too: `releasectl_builder_status` (building, ready,
failed), `releasectl_source_image`, `releasectl_recipe_sha256`, and the failure's tail in
`releasectl_builder_detail` (255 bytes).

Done is read from the console log (`os-getConsoleOutput`): the recipe rides in a shell wrapper that prints
RECIPE_DONE or `RECIPE_FAILED <status>` to the console; a cloud-config recipe gets a last `runcmd` entry
that prints RECIPE_DONE (cloud-init runs runcmd as one script, so a failing entry leaves it out: the
timeout catches it). Quiescing is Nova `os-stop`, snapshot, `os-start`.
"""

from __future__ import annotations

import base64
import logging
import secrets
from typing import Any, Mapping

import yaml

from releasectl.errors import ConfigError, Conflict, NotFound, RecipeFailed, ResourceFailure, UsageError, WaitTimeout
from releasectl.providers.base import LABEL_PREFIX as P
from releasectl.providers.base import (
    RECIPE_DONE,
    RECIPE_FAILED,
    Builder,
    BuilderSpec,
    BuilderStatus,
    Label,
    ProviderContext,
    Recipe,
)

from .glance import Glance
from .http import create_then_find
from .neutron import Neutron, looks_like_id
from .nova import Nova
from .servers import USER_DATA_LIMIT, Servers
from .status import Poll, wait_for_status
from .values import check_meta, epoch, labels_of

log = logging.getLogger("releasectl.providers.openstack.builder")

STATUS = "builder_status"
DETAIL = "builder_detail"
MARKER = "create"
CONSOLE_LINES = 200
WRAPPER = """#!/bin/bash
# releasectl: the recipe {name} (sha256 {sha256}), its status printed to the console when it ends
mkdir -p /var/lib/releasectl
cat > /var/lib/releasectl/recipe <<'RELEASECTL_RECIPE_EOF'
{text}
RELEASECTL_RECIPE_EOF
chmod 0700 /var/lib/releasectl/recipe
if bash -e /var/lib/releasectl/recipe > /var/log/releasectl-recipe.log 2>&1; then status=0; else status=$?; fi
tail -n 20 /var/log/releasectl-recipe.log > /dev/console
if [ "$status" = 0 ]; then echo "{done}" > /dev/console; else echo "{failed} $status" > /dev/console; fi
"""


def user_data(recipe: Recipe) -> str:
    """The recipe as cloud-init user data (base64), with its end reported on the console."""
    if recipe.kind == "cloud-config":
        try:
            doc = yaml.safe_load(recipe.text)
        except yaml.YAMLError as exc:
            raise UsageError(f"recipe {recipe.name}: not valid cloud-config YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(doc, dict):
            raise UsageError(f"recipe {recipe.name}: a #cloud-config document is a mapping")
        runcmd = doc.get("runcmd") or []
        if not isinstance(runcmd, list):
            raise UsageError(f"recipe {recipe.name}: runcmd must be a list")
        doc["runcmd"] = [*runcmd, f"echo {RECIPE_DONE} > /dev/console"]
        text = "#cloud-config\n" + yaml.safe_dump(doc, sort_keys=False)
    else:
        if "\nRELEASECTL_RECIPE_EOF\n" in f"\n{recipe.text}\n":
            raise UsageError(f"recipe {recipe.name} holds the line RELEASECTL_RECIPE_EOF, which ends releasectl's wrapper")
        text = WRAPPER.format(name=recipe.name.replace("\n", " "), sha256=recipe.sha256, text=recipe.text.rstrip("\n"),
                              done=RECIPE_DONE, failed=RECIPE_FAILED)
    encoded = base64.b64encode(text.encode()).decode()
    if len(encoded) > USER_DATA_LIMIT:
        raise UsageError(f"recipe {recipe.name} is {len(encoded)} bytes as user data; Nova takes {USER_DATA_LIMIT}",
                         hint="make the recipe smaller: have it fetch what it needs")
    return encoded


def recipe_end(console: str) -> tuple[bool, str] | None:
    """(succeeded, why) once the console shows the recipe's end, else None."""
    lines = console.splitlines()
    for index, line in enumerate(lines):
        if line.strip() == RECIPE_DONE:
            return True, ""
        if line.strip().startswith(RECIPE_FAILED):
            tail = "\n".join(lines[max(0, index - 10):index])
            return False, f"it exited {line.strip()[len(RECIPE_FAILED):].strip() or '?'}; its output ends with:\n{tail}"
    return None


class BuilderServer:
    def __init__(self, nova: Nova, glance: Glance, neutron: Neutron, servers: Servers, ctx: ProviderContext,
                 options: Mapping[str, Any], *, poll: Poll) -> None:
        self.nova = nova
        self.glance = glance
        self.neutron = neutron
        self.servers = servers
        self.ctx = ctx
        self.options = options
        self.poll = poll
        self.timeout = float(options["boot_timeout"])
        self.stopped: str | None = None  # the server quiesce() stopped, for resume()

    # ---- reading ------------------------------------------------------------------------------------------

    def find(self) -> dict[str, Any] | None:
        found = [d for d in self.nova.iter_servers() if (d.get("metadata") or {}).get(P + Label.BUILDER) == self.ctx.app
                 and d.get("OS-EXT-STS:task_state") != "deleting" and str(d.get("status")).upper() != "DELETED"]
        return min(found, key=lambda d: str(d.get("created", ""))) if found else None

    def to_builder(self, d: Mapping[str, Any]) -> Builder:
        labels = labels_of(d.get("metadata") or {})
        nova_status = str(d.get("status")).upper()
        status = {"ready": BuilderStatus.READY, "failed": BuilderStatus.FAILED}.get(labels.get(STATUS, ""), BuilderStatus.BUILDING)
        if nova_status == "ERROR":
            status = BuilderStatus.FAILED
        elif nova_status == "SHUTOFF" and status is BuilderStatus.READY:
            status = BuilderStatus.STOPPED
        server = self.servers.to_server(d)
        detail = labels.get(DETAIL, "")
        if nova_status == "ERROR":
            detail = (d.get("fault") or {}).get("message") or "Nova status ERROR"
        return Builder(
            id=str(d["id"]), name=str(d.get("name", "")), status=status,
            source_image_id=labels.get(Label.SOURCE_IMAGE, ""), recipe_sha256=labels.get(Label.RECIPE_SHA256, ""),
            created_at=epoch(d.get("created")), address=server.address, port=server.port, detail=detail,
        )

    def get(self) -> Builder | None:
        d = self.find()
        return None if d is None else self.to_builder(d)

    # ---- up and down -----------------------------------------------------------------------------------------

    def _image(self, ref: str) -> dict[str, Any]:
        """An image by id, or by name (a distribution's base image, say)."""
        image = self.glance.get_image(ref) if looks_like_id(ref) else None
        if image is None:
            named = list(self.glance.iter_images([("name", ref)]))
            if len(named) > 1:
                raise UsageError(f"several images are named {ref!r}", hint="pass the image's id")
            image = named[0] if named else None
        if image is None:
            raise UsageError(f"no image {ref!r} to bring the builder up from",
                             hint="pass a version, an image id or name, or set openstack.base_image for `--from base`")
        if str(image.get("status")) != "active":
            raise UsageError(f"the image {image.get('name')} ({image['id']}) is {image.get('status')}, not active")
        return image

    def up(self, spec: BuilderSpec) -> Builder:
        if self.find() is not None:
            raise Conflict(f"the builder of {self.ctx.app} is up already")
        ref = spec.source_image_id or self.options.get("base_image")
        if not ref:
            raise ConfigError("openstack.base_image is not set: it is what the builder boots from without an image "
                              "of the app", hint="set it (an image name or id), or pass --from VERSION")
        image = self._image(str(ref))
        encoded = user_data(spec.recipe) if spec.recipe is not None else None  # before anything is created
        flavor = self.nova.flavor_id(self.servers._require("flavor", "to boot the builder"))
        marker = secrets.token_hex(8)
        port = str(image.get(P + Label.PORT) or self.ctx.app_port)
        meta = {
            P + Label.APP: self.ctx.app, P + Label.BUILDER: self.ctx.app, P + Label.PORT: port,
            P + Label.SOURCE_IMAGE: spec.source_image_id or "", P + STATUS: "building" if spec.recipe else "ready",
            P + Label.RECIPE_SHA256: spec.recipe.sha256 if spec.recipe else "", P + MARKER: marker,
        }
        check_meta(meta)
        network = self.options["network"]
        name = f"{self.ctx.app}-builder"
        body: dict[str, Any] = {
            "name": name, "imageRef": str(image["id"]), "flavorRef": flavor, "metadata": meta,
            "networks": [{"uuid": str(self.neutron.network(network)["id"])}] if network else "auto",
        }
        if self.options["key_name"]:
            body["key_name"] = self.options["key_name"]
        if self.options["security_groups"]:
            body["security_groups"] = [{"name": g} for g in self.options["security_groups"]]
        if encoded:
            body["user_data"] = encoded

        def find() -> str | None:
            found = [s for s in self.nova.find_by_name(name) if (s.get("metadata") or {}).get(P + MARKER) == marker]
            return str(found[0]["id"]) if found else None

        server_id = create_then_find(lambda: self.nova.create_server(body), find, what=f"builder {name}")
        wait_for_status(
            lambda: self.nova.get_server(server_id), what=f"builder {name} to boot", timeout=self.timeout, poll=self.poll,
            done=lambda d: str(d.get("status")).upper() == "ACTIVE",
            failed=lambda d: ResourceFailure(f"the builder {name} is in ERROR: {(d.get('fault') or {}).get('message', '')}")
            if str(d.get("status")).upper() == "ERROR" else None,
            missing=lambda: ResourceFailure(f"the builder {name} ({server_id}) vanished while it booted"),
        )
        if spec.recipe is not None:
            self._await_recipe(server_id, name, spec)
        d = self.nova.get_server(server_id)
        if d is None:
            raise ResourceFailure(f"the builder {name} ({server_id}) vanished")
        return self.to_builder(d)

    def console(self, server_id: str) -> str:
        resp = self.nova.call("POST", f"/servers/{server_id}/action", json={"os-getConsoleOutput": {"length": CONSOLE_LINES}},
                              allow=(409,), idempotent=True)
        return "" if resp.status_code == 409 else str(resp.json().get("output") or "")

    def _await_recipe(self, server_id: str, name: str, spec: BuilderSpec) -> None:
        """Read the console until the recipe's end shows, bounded by spec.timeout; record the outcome."""
        assert spec.recipe is not None
        try:
            succeeded, why = wait_for_status(
                lambda: {"end": recipe_end(self.console(server_id))}, what=f"the recipe {spec.recipe.name} on {name}",
                timeout=spec.timeout, poll=self.poll, done=lambda r: r["end"] is not None,
            )["end"]  # type: ignore[index]
        except WaitTimeout:
            succeeded, why = False, f"it did not report done within {spec.timeout:g}s"
        self.nova.set_metadata(server_id, {P + STATUS: "ready" if succeeded else "failed",
                                           P + DETAIL: why.encode()[-255:].decode(errors="ignore")})
        if not succeeded:
            raise RecipeFailed(f"the recipe {spec.recipe.name} failed on the builder {name}: {why}",
                               hint="`releasectl builder status` shows it; `releasectl builder down` removes it")

    def down(self) -> bool:
        removed = False
        while (d := self.find()) is not None:  # bounded: each pass deletes one and waits for it
            self.servers.delete(str(d["id"]))
            removed = True
        return removed

    # ---- quiesce ---------------------------------------------------------------------------------------------

    def quiesce(self, configured: Any) -> bool:
        """Stop the builder bake snapshots (the one from code, else the configured one) if it runs."""
        d = self.find()
        if d is None:
            try:
                d = configured()
            except (ConfigError, UsageError, NotFound):
                return False  # bake reports the missing builder itself
        if str(d.get("status")).upper() != "ACTIVE":
            return False
        self.stopped = str(d["id"])  # before the stop goes out: resume() starts it even if the wait fails
        self._power(self.stopped, "os-stop", "SHUTOFF")
        return True

    def resume(self) -> bool:
        if self.stopped is None:
            return False
        self._power(self.stopped, "os-start", "ACTIVE")
        self.stopped = None
        return True

    def _power(self, server_id: str, action: str, wanted: str) -> None:
        wait_for_status(lambda: self.nova.get_server(server_id), what=f"builder {server_id} to settle",
                        timeout=self.timeout, poll=self.poll, done=lambda d: d.get("OS-EXT-STS:task_state") in (None, ""))
        # retried like an idempotent call: a repeat of a stop (or start) that went through answers 409
        self.nova.call("POST", f"/servers/{server_id}/action", json={action: None}, allow=(409,), idempotent=True)
        wait_for_status(
            lambda: self.nova.get_server(server_id), what=f"builder {server_id} to be {wanted}", timeout=self.timeout,
            poll=self.poll, done=lambda d: str(d.get("status")).upper() == wanted and not d.get("OS-EXT-STS:task_state"),
            failed=lambda d: ResourceFailure(f"the builder {d.get('name')} is in ERROR") if str(d.get("status")).upper() == "ERROR" else None,
            missing=lambda: ResourceFailure(f"the builder {server_id} vanished"),
        )
