"""Notifications: a short message to the user's phone or chat when a campaign finishes,
an experiment fails, the machine reaches its critical temperature, the storage goes
away or the engine crashes (apprise URLs; optional extra `hpotui[notify]`).

- `config.py`   the `[notify]` table, `HPOTUI_NOTIFY_URLS`, masking of URLs (secrets)
- `notifier.py` which moments send what, rate limit, best value so far
- `sender.py`   apprise delivery on a background thread with a bounded queue

The engine makes one `Notifier` and `install`s it for its process; code that has no
handle on the engine (the storage retry layer) reports through the module-level hooks
below, which do nothing in a process where no notifier is installed.
"""

from __future__ import annotations

from engine.notify.config import EVENTS, NotifySpec
from engine.notify.notifier import Notifier

__all__ = ["EVENTS", "Notifier", "NotifySpec", "install", "installed", "storage_outage"]

_installed: Notifier | None = None


def install(notifier: Notifier | None) -> None:
    """Make `notifier` the one the module-level hooks use in this process (None: none)."""
    global _installed
    _installed = notifier


def installed() -> Notifier | None:
    return _installed


def storage_outage(detail: str) -> bool:
    """Hook for the storage layer: the storage cannot be reached (`detail` says how; it
    must not contain a password: pass URLs through engine.storage.backend.mask_url). Never
    blocks, never raises; True if a message was queued."""
    notifier = _installed
    if notifier is None:
        return False
    try:
        return notifier.storage_outage(detail)
    except Exception:
        return False
