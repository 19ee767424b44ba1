"""Provider registry: a name maps to 'module:Class', imported only when chosen (keeps start-up fast)."""

from __future__ import annotations

import importlib

from releasectl.errors import UsageError
from releasectl.providers.base import Provider, ProviderContext

REGISTRY: dict[str, str] = {
    "local": "releasectl.providers.local:LocalProvider",
    "openstack": "releasectl.providers.openstack:OpenStackProvider",
}


def load(name: str, ctx: ProviderContext) -> Provider:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown provider {name!r}", hint=f"choose one of: {', '.join(sorted(REGISTRY))}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(ctx)
