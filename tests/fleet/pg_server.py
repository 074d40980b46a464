"""A throw-away PostgreSQL server for tests: initdb into a temp dir, loopback port.

Password authentication is on (scram-sha-256) so tests can prove the password never
leaks. As root, the server runs as the `postgres` system user (initdb refuses root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PASSWORD = "s3cret-Pw-4417"
USER = "hpotui"


def find_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL isn't installed."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """Start a server, create database `hpotui`, yield its URL, stop and delete it."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL binaries not found")
    root = Path(tempfile.mkdtemp(prefix="hpotui-pg-"))
    prefix = _as_server_user()
    if prefix:
        shutil.chown(root, user="postgres")
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD)
    if prefix:
        shutil.chown(pwfile, user="postgres")
    data = root / "data"
    port = _free_port()
    run = lambda *args: subprocess.run(  # noqa: E731
        [*prefix, *args], check=True, capture_output=True, text=True
    )
    try:
        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
        )
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-w",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=100",
            "start",
        )
        run(str(bin_dir / "createdb"), "-h", str(root), "-p", str(port), "-U", USER, "hpotui")
        yield f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{port}/hpotui"
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


class RestartableServer:
    """A server of `restartable_server`: `url`, and `stop` / `start` / `restart` as an
    administrator would (`pg_ctl stop -m fast`, ...), for the outage tests."""

    def __init__(self, bin_dir: Path, root: Path, port: int, prefix: list[str]) -> None:
        self.bin_dir, self.root, self.port, self.prefix = bin_dir, root, port, prefix
        self.url = f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{port}/hpotui"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), *args],
            check=True,
            capture_output=True,
            text=True,
        )

    def _options(self) -> list[str]:
        return [
            "-l",
            str(self.root / "server.log"),
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=100",
        ]

    def start(self) -> None:
        self._ctl(*self._options(), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self._ctl(*self._options(), "-m", mode, "-w", "restart")


@contextlib.contextmanager
def restartable_server() -> Iterator[RestartableServer]:
    """A server of its own (not the session's shared one) that a test may stop, start
    and restart; stopped and deleted at the end."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL binaries not found")
    root = Path(tempfile.mkdtemp(prefix="hpotui-pg-"))
    prefix = _as_server_user()
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD)
    if prefix:
        shutil.chown(root, user="postgres")
        shutil.chown(pwfile, user="postgres")
    server = RestartableServer(bin_dir, root, _free_port(), prefix)
    try:
        subprocess.run(
            [
                *prefix,
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
            ],
            check=True,
            capture_output=True,
        )
        server.start()
        subprocess.run(
            [
                *prefix,
                str(bin_dir / "createdb"),
                "-h",
                str(root),
                "-p",
                str(server.port),
                "-U",
                USER,
                "hpotui",
            ],
            check=True,
            capture_output=True,
        )
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
