"""Settings types only some configurations or commands use: a `notify.webhooks` entry, a `regions:` entry,
and `config check`'s report. Part of releasectl.config, which re-exports them (import them from there); kept
apart so that `status` on a configuration without them does not create their dataclasses (start-up, issue 12)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from releasectl.config import NOTIFY_EVENTS, Settings, redact_url


@dataclass(frozen=True)
class Webhook:
    """One `notify.webhooks` entry. The URL is `url` or read from the environment variable `url_env` (a URL
    that is itself a secret, like a Slack one); the HMAC secret only ever comes from `secret_env` or the
    keyring (`secret_keyring`), never from the file."""

    name: str
    url: str | None = None
    url_env: str | None = None
    events: tuple[str, ...] = NOTIFY_EVENTS
    format: str = "json"
    secret_env: str | None = None
    secret_keyring: str | None = None
    timeout: float = 5.0  # one attempt; also the most a dead receiver delays the end of a command
    retries: int = 3
    backoff: float = 1.0  # before the first retry, doubled before each next one
    budget: float = 60.0  # all attempts of one notification
    cacert: str | None = None  # a CA bundle for a private CA (resolved against the config's folder)

    def effective(self) -> dict[str, Any]:
        url = f"${self.url_env}" if self.url_env else redact_url(self.url or "", keep_path=True)
        secret = (f"env ${self.secret_env}" if self.secret_env
                  else f"keyring releasectl/webhook:{self.secret_keyring}" if self.secret_keyring else "none (unsigned)")
        return {"name": self.name, "url": url, "events": list(self.events), "format": self.format,
                "signing_secret_from": secret, "timeout": self.timeout, "retries": self.retries,
                "backoff": self.backoff, "budget": self.budget, "cacert": self.cacert}


@dataclass(frozen=True)
class RegionSettings:
    """One `regions:` entry: the region's name and its own provider options (e.g. `openstack.pool`)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckReport:
    """`config check`: the chosen environment's settings, and what else was validated."""

    settings: Settings
    environments: tuple[str, ...]
    pipelines: dict[str, str] = field(default_factory=dict)  # reference -> resolved file
