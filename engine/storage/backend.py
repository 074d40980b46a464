"""Where a campaign's Optuna studies live, and how to name that place safely.

A storage URL is either
- a path to an Optuna journal file (the default, `outputs/<campaign>/optuna.journal`):
  append-only, safe for several local processes, nothing to install; a `journal:` prefix
  (`journal:///abs/path` or `journal:rel/path`) is accepted too;
- an SQLAlchemy URL of a database (`sqlite:///file.db` for one writer,
  `postgresql://user:pass@host/db` or `mysql://...` for several machines).

Rules:
- `check_storage` only looks: it never creates a file, a table or a directory, so a
  failing pre-flight leaves storage untouched. `open_storage` is the only function that
  creates anything (the journal file and its folder, the database tables).
- A URL is shown to people only through `mask_url` (events, logs, errors), so a
  password never reaches a screen or a log file; it reaches child processes through
  `$HPOTUI_STORAGE` (`child_env`), never their argv.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import paths

if TYPE_CHECKING:
    import optuna

JOURNAL_NAME = "optuna.journal"
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
_PASSWORD = re.compile(r"(?P<head>://[^:/@?#]*:)(?P<password>[^/?#]*)(?P<at>@)")
_PASSWORD_PARAM = re.compile(r"(?P<head>[?&]password=)(?P<password>[^&#]*)", re.IGNORECASE)


STORAGE_ENV = "HPOTUI_STORAGE"  # how a storage URL reaches a process: never its argv


def requested_storage(flag: str | None) -> str | None:
    """The storage a command was asked to use: its `--storage`, else `$HPOTUI_STORAGE`,
    else None (the campaign's own: its config's `storage`, or the default journal).

    Every command that takes `--storage` resolves it here. A child process gets the URL
    in its environment (`child_env`), never on its command line, where `ps` shows it
    to everyone on the machine.
    """
    return flag or os.environ.get(STORAGE_ENV) or None


def child_env(url: str | None) -> dict[str, str]:
    """This process's environment with `url` as the child's storage (unset if None)."""
    env = {k: v for k, v in os.environ.items() if k != STORAGE_ENV}
    if url:
        env[STORAGE_ENV] = url
    return env


def default_storage_url(campaign_name: str) -> str:
    """The journal file of a campaign: `<workspace>/outputs/<campaign>/optuna.journal`."""
    return str(paths.outputs_dir() / campaign_name / JOURNAL_NAME)


def mask_url(url: str) -> str:
    """`postgresql://bob:secret@host/db` -> `postgresql://bob:***@host/db`."""
    masked = _PASSWORD.sub(lambda m: f"{m['head']}***{m['at']}", url)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['head']}***", masked)


def is_journal(url: str) -> bool:
    """True when `url` names a journal file rather than a database."""
    return _scheme(url) in (None, "journal")


def journal_path(url: str) -> Path:
    """The file of a journal URL (`path`, `journal:path` or `journal:///abs/path`)."""
    if not is_journal(url):
        raise ValueError(f"not a journal storage: {mask_url(url)}")
    text = url
    if text.startswith("journal:"):
        text = text[len("journal:") :]
        if text.startswith("//"):
            text = text[2:]  # journal:///abs -> /abs ; journal://rel -> rel
    path = Path(text).expanduser()
    return path if path.is_absolute() else paths.workspace() / path


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    engine_kwargs: dict[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> optuna.storages.BaseStorage:
    """Open (and create when missing) the storage at `url`.

    `heartbeat_interval` and `grace_period` apply to databases: a RUNNING trial whose
    worker stopped beating for `grace_period` seconds (default 2x the interval) is
    marked failed by Optuna. The journal backend has no heartbeat; the engine recovers
    interrupted trials itself on restart.

    A journal is checked first (engine/storage/journal_check.py): a torn last record is cut back
    (after a backup) and reported through `warn` (default: a line on stderr); a damaged
    middle raises `JournalDamaged`, a UserError.
    """
    import optuna  # here, not at the top: naming a storage needs no Optuna (its import
    # is a quarter of a second of a finished campaign's first frame)

    if is_journal(url):
        from engine.storage.journal_check import CheckedJournalBackend, check_and_repair

        say = warn or _warn_on_stderr
        path = journal_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        check_and_repair(path, say)
        return optuna.storages.JournalStorage(CheckedJournalBackend(path, say))
    if engine_kwargs is None:  # a connection limit per process (engine.storage.pool)
        from engine.storage.pool import engine_kwargs as pool_kwargs

        engine_kwargs = pool_kwargs(url)
    return optuna.storages.RDBStorage(
        _sqlalchemy_url(url),
        # a pooled connection that died with a database restart is replaced on checkout
        engine_kwargs={"pool_pre_ping": True, **(engine_kwargs or {})},
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
    )


def _warn_on_stderr(line: str) -> None:
    print(f"hpotui: warning: {line}", file=sys.stderr)


def check_storage(url: str) -> str | None:
    """What is wrong with `url` (one line, password masked), or None if usable.

    Looks only: creates nothing.
    """
    scheme = _scheme(url)
    if scheme is not None and scheme != "journal" and scheme.split("+")[0] not in _RDB_SCHEMES:
        return (
            f"storage {mask_url(url)}: unknown scheme {scheme!r}; use a journal file path, "
            "sqlite:///FILE, postgresql://USER:PASSWORD@HOST/DB or mysql://..."
        )
    if is_journal(url):
        path = journal_path(url)
        return _check_file(path, "journal file") or _check_journal_content(path)
    if scheme is not None and scheme.startswith("sqlite"):
        return _check_sqlite(url)
    return _check_port(url) or _check_database(url)


def _scheme(url: str) -> str | None:
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", url)
    if not match or len(match.group(1)) == 1:  # "C:\..." is a Windows path, not a scheme
        return None
    return match.group(1).lower()


def _sqlalchemy_url(url: str) -> str:
    """Map a plain `postgresql://` URL to the installed psycopg 3 driver."""
    scheme = _scheme(url) or ""
    if scheme in ("postgresql", "postgres"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            return "postgresql+psycopg:" + url.split(":", 1)[1]
    return url


def _check_file(path: Path, what: str) -> str | None:
    if path.exists():
        if path.is_dir():
            return f"storage {path}: is a folder, expected a {what}"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"storage {path}: {what} is not readable and writable by this user"
        return None
    parent = path.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        return f"storage {path}: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"storage {path}: cannot create the {what}: {parent} is not writable"
    return None


def _check_journal_content(path: Path) -> str | None:
    """An existing journal must start with an Optuna journal record (a JSON line)."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with path.open("rb") as file:
        first = file.readline(1 << 16)
    if not first.endswith(b"\n"):
        return None  # a torn first record: journal_check cuts it back (with a backup)
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    if not isinstance(record, dict) or "op_code" not in record:
        return f"storage {path}: not an Optuna journal file (its first line is not a record)"
    return None


def _check_sqlite(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        database = make_url(url).database
    except Exception as error:  # sqlalchemy raises ArgumentError and friends
        return f"storage {mask_url(url)}: not a valid URL ({error})"
    if not database or database == ":memory:":
        return f"storage {url}: an in-memory database loses the campaign on exit; name a file"
    path = Path(database)
    if not path.is_absolute():
        path = Path.cwd() / path
    problem = _check_file(path, "SQLite database")
    if problem is None and path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as file:
            if file.read(16) != b"SQLite format 3\x00":
                return f"storage {path}: not an SQLite database"
    return problem


_PORT = re.compile(r"^[^:]+://(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/?@]*):([^/?@]+)(?=[/?]|$)")


def _check_port(url: str) -> str | None:
    """A port that is no port, said as such (the driver's words were "connection is
    bad: invalid port number" or a Python int() error)."""
    match = _PORT.match(url)
    if match is None:
        return None
    port = match.group(1)
    if not port.isdigit():
        return f"storage {mask_url(url)}: port {port!r} is not a number"
    if not 1 <= int(port) <= 65535:
        return f"storage {mask_url(url)}: port {port} is out of range (1-65535)"
    return None


def _check_database(url: str) -> str | None:
    """Connect, and prove we may create tables, inside a transaction that is rolled back."""
    import sqlalchemy

    masked = mask_url(url)
    try:
        engine = sqlalchemy.create_engine(_sqlalchemy_url(url), connect_args=timeout_args(url))
    except ModuleNotFoundError as error:
        install = (
            "hpotui[postgres]" if url.startswith("postgres") else "its driver (e.g. mysqlclient)"
        )
        return f"storage {masked}: database driver missing ({error.name}); install {install}"
    except Exception as error:
        return f"storage {masked}: not a valid database URL ({_one_line(error)})"
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            connection.execute(sqlalchemy.text("CREATE TEMPORARY TABLE hpotui_probe (x INTEGER)"))
            transaction.rollback()
    except Exception as error:
        return f"storage {masked}: not reachable or not writable ({_one_line(error)})"
    finally:
        engine.dispose()
    return None


def timeout_args(url: str) -> dict[str, Any]:
    """A database driver's connect timeout (5 s): a look at an unreachable server
    answers, never hangs."""
    scheme = _scheme(url) or ""
    if scheme.startswith(("postgres", "mysql", "mariadb")):
        return {"connect_timeout": 5}
    return {}


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return mask_url(text[0]) if text else type(error).__name__
