"""Database connections per process: a limit, and a name each connection carries.

Every hpotui process (engine, its local workers, a node and its workers) opens its own
SQLAlchemy pool on a shared database. SQLAlchemy's default (5 kept + 10 overflow per
process) lets a fleet of a few machines reach the server's `max_connections`; here a
process keeps one connection open and opens at most `pool_size - 1` more while it needs
them (the campaign lock holds one while the storage uses another; a trial's heartbeat
thread a third). The limit is `--pool-size` (`hpotui`, `hpotui worker`, `hpotui hosts`),
passed to child processes in `$HPOTUI_POOL_SIZE`.

Each connection names its process in PostgreSQL's `application_name`
(`hpotui:engine`, `hpotui:node_worker`, ...), so `pg_stat_activity` shows who holds what
(docs/distributed.md, "Connections").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from engine.errors import UserError

POOL_ENV = "HPOTUI_POOL_SIZE"
DEFAULT_POOL = 3
MIN_POOL = 2  # the campaign lock's connection plus one for the storage inside it


def set_pool_size(n: int | None) -> None:
    """Check `--pool-size` and hand it to this process and its children."""
    if n is None:
        return
    if n < MIN_POOL:
        raise UserError(
            f"needs at least {MIN_POOL} connections per process, got {n}", where="--pool-size"
        )
    os.environ[POOL_ENV] = str(n)


def pool_size() -> int:
    raw = os.environ.get(POOL_ENV, "").strip()
    if not raw:
        return DEFAULT_POOL
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < MIN_POOL:
        raise UserError(
            f"expected a number of connections >= {MIN_POOL}, got {raw!r}", where=f"${POOL_ENV}"
        )
    return n


def process_name() -> str:
    """`engine`, `worker_pool`, `node_worker`, `cli`, ...: what this process runs."""
    main = Path(sys.argv[0] if sys.argv and sys.argv[0] else "python")
    if main.stem == "__main__":
        return main.parent.name
    return "worker_pool" if main.parts[-2:] == ("worker", "pool.py") else main.stem


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy `create_engine` arguments for a database `url` (none for SQLite)."""
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("sqlite"):
        return {}
    kwargs: dict[str, Any] = {"pool_size": 1, "max_overflow": pool_size() - 1}
    if scheme.startswith("postgres"):
        kwargs["connect_args"] = {"application_name": f"hpotui:{process_name()}"[:63]}
    return kwargs
