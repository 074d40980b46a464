"""What to notify about, and where: the `[notify]` table of a campaign config plus
`HPOTUI_NOTIFY_URLS`.

Rules:
- A notification URL is a secret (it holds bot tokens, passwords, webhook keys): it is
  shown only through `mask_notify_url` ("URL 2 (tgram://***)"), and any text that may
  quote it (a sender's error) goes through `scrub` first. Nothing here stores it.
- `HPOTUI_NOTIFY_URLS` (URLs separated by spaces, commas or newlines) adds to the
  config's `urls`, so secrets can stay out of the TOML file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

ENV_URLS = "HPOTUI_NOTIFY_URLS"

CAMPAIGN_DONE = "campaign_done"
EXPERIMENT_FAILED = "experiment_failed"
THERMAL_CRITICAL = "thermal_critical"
STORAGE_OUTAGE = "storage_outage"
ENGINE_CRASHED = "engine_crashed"
CAMPAIGN_STOPPED = "campaign_stopped"  # a fault it cannot wait out: exit 3 or 75, resumable
EVENTS = (
    CAMPAIGN_DONE,
    EXPERIMENT_FAILED,
    THERMAL_CRITICAL,
    STORAGE_OUTAGE,
    ENGINE_CRASHED,
    CAMPAIGN_STOPPED,
)

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://\S+$")
_SECRET_PARTS = re.compile(r"[/:@?&=#,]+")


@dataclass(frozen=True)
class NotifySpec:
    """The `[notify]` table: apprise URLs and the events that send a message."""

    urls: tuple[str, ...] = ()
    on: tuple[str, ...] = EVENTS

    def with_env(self, environ: dict[str, str] | None = None) -> NotifySpec:
        """This spec plus the URLs of `HPOTUI_NOTIFY_URLS` (repeats dropped)."""
        extra = urls_from_env(os.environ if environ is None else environ)
        urls = tuple(dict.fromkeys((*self.urls, *extra)))
        return NotifySpec(urls=urls, on=self.on)


def urls_from_env(environ: os._Environ[str] | dict[str, str]) -> tuple[str, ...]:
    text = environ.get(ENV_URLS, "")
    return tuple(u for u in re.split(r"[\s,]+", text) if u)


def is_url(text: str) -> bool:
    """Shape only (`scheme://...`); whether apprise knows the scheme is checked when the
    sender starts, where an unknown one is logged and skipped, never fatal."""
    return bool(_SCHEME.match(text.strip()))


def mask_notify_url(url: str) -> str:
    """`tgram://123:secret/456` -> `tgram://***`: only the scheme is ever shown."""
    match = _SCHEME.match(url.strip())
    return f"{match['scheme']}://***" if match else "***"


def label(index: int, url: str) -> str:
    """How a URL is named to people: its 1-based position and masked form."""
    return f"URL {index + 1} ({mask_notify_url(url)})"


def scrub(text: str, urls: tuple[str, ...] | list[str]) -> str:
    """`text` with every part of every URL (after the scheme) longer than 3 characters
    replaced by ***: a sender's error message may quote a host, a token or a user."""
    for url in urls:
        rest = url.split("://", 1)[-1]
        for part in sorted(_SECRET_PARTS.split(rest), key=len, reverse=True):
            if len(part) > 3:
                text = text.replace(part, "***")
    return text
