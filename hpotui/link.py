"""The front-end's end of the engine protocol: attach to a campaign's running engine
(its unix socket) or start one (`python -m engine`) and talk JSON lines over its pipes.

The engine is started in its own session (start_new_session=True), so Ctrl-C or a
closed terminal never reaches it. `detach()` and `close()` never stop it: it runs on
headless until the campaign ends or it gets a `Stop` command (send one first to end
it).

Front-ends opened at the same moment share one engine: `open` holds the campaign's start
lock (`StartLock`, a file in the temporary directory) from before it looks for a running
engine until the engine it started listens on its socket (or has ended), so the others
wait and attach to it; each used to start its own, and all but one were refused by the
engine's lock ("another engine is running this campaign").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import fcntl
import functools
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from engine import protocol as p

SOCKET_NAME = "engine.sock"
STREAM_LIMIT = 16 * 2**20  # a queue snapshot of a big campaign is one long line
POLL_S = 0.05
LISTEN_RETRIES = 10  # a socket file whose engine is between bind() and listen()
Other = TypeVar("Other")


def engine_flags(args: Any) -> list[str]:
    """The `python -m engine` flags that pass through from `hpotui [--batch]`."""
    patience = getattr(args, "storage_patience", None)
    return [] if patience is None else ["--storage-patience", str(patience)]


def campaign_dir_of(config: Path) -> Path | None:
    """outputs/<campaign>/ of a config, or None when the config does not load (the
    engine will report why)."""
    from engine import paths

    campaign = loaded_campaign(config)
    return None if campaign is None else paths.outputs_dir() / campaign.name


def loaded_campaign(config: Path) -> Any:
    """The config's `Campaign`, or None when it does not load; read once per version of
    the file (opening a campaign asks for it twice: its folder, then whether it is
    finished)."""
    try:
        st = Path(config).stat()
    except OSError:
        return None
    return _load(str(Path(config).resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> Any:
    try:
        from engine.campaign.config import load_campaign

        return load_campaign(Path(path))
    except Exception:
        return None


class EngineLink:
    """One connection to an engine: events in, commands out."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter | None,
        *,
        process: subprocess.Popen[bytes] | None = None,
        errors: asyncio.StreamReader | None = None,
        attached: bool = False,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._process = process
        self.attached = attached
        self._stderr: collections.deque[str] = collections.deque(maxlen=200)
        self._ids = itertools.count(1)
        self._prefix = f"fe{os.getpid()}-"
        self._stderr_task: asyncio.Task[None] | None = None
        self._transports: list[asyncio.BaseTransport] = []
        self._broken = False  # the connection failed: the stream has ended
        self._release_task: asyncio.Future[None] | None = None
        if errors is not None:
            self._stderr_task = asyncio.ensure_future(self._pump_stderr(errors))

    @classmethod
    async def open(
        cls,
        config: Path,
        *,
        storage: str | None = None,
        workers: str | None = None,
        extra: list[str] | None = None,
        commands: Sequence[p.Command] = (),
        instead: Callable[[], Other | None] | None = None,
    ) -> EngineLink | Other:
        """Attach to the campaign's running engine if there is one, else start one
        (`extra`: more `python -m engine` flags, e.g. `--storage-patience 10m`), under
        the campaign's start lock (module docstring). `commands` reach the engine first
        (a started engine applies them before its first look at the queue). `instead`,
        when no engine runs: something to use rather than starting one (run in a thread,
        under the lock; None: start one), e.g. a finished campaign's view from storage."""
        folder = campaign_dir_of(Path(config))
        if folder is None:  # the config does not load: the engine says why
            return await cls.spawn(config, storage=storage, workers=workers, extra=extra)
        lock = await StartLock.acquire(folder)
        try:
            link = await cls.attach(folder / SOCKET_NAME)
            if link is not None:
                lock.release()
                for command in commands:
                    await link.send(command)
                return link
            if instead is not None:
                other = await asyncio.to_thread(instead)
                if other is not None:
                    lock.release()
                    return other
            before = _identity(folder / SOCKET_NAME)
            spawned = await cls.spawn(
                config, storage=storage, workers=workers, extra=extra, commands=commands
            )
        except BaseException:
            lock.release()
            raise
        spawned._release_task = asyncio.ensure_future(
            spawned._release_when_listening(lock, folder / SOCKET_NAME, before)
        )
        return spawned

    @classmethod
    async def attach(cls, socket_path: Path) -> EngineLink | None:
        for _ in range(LISTEN_RETRIES):
            if not socket_path.exists():
                return None
            try:
                reader, writer = await asyncio.open_unix_connection(
                    str(socket_path), limit=STREAM_LIMIT
                )
            except ConnectionRefusedError:
                await asyncio.sleep(POLL_S)  # an engine between bind() and listen()
                continue
            except OSError:
                return None
            return cls(reader, writer, attached=True)
        return None  # a socket file left by a killed engine

    @classmethod
    async def spawn(
        cls,
        config: Path,
        *,
        storage: str | None = None,
        workers: str | None = None,
        extra: list[str] | None = None,
        commands: Sequence[p.Command] = (),
    ) -> EngineLink:
        from engine.storage.backend import child_env, requested_storage

        cmd = [sys.executable, "-m", "engine", "--config", str(config)]
        if workers:
            cmd += ["--workers", str(workers)]
        cmd += extra or []
        for command in commands:  # applied before the engine's first look at the queue
            cmd += ["--command", p.encode(command)]
        # Popen, not asyncio's subprocess: its transport kills a still-running child
        # when closed, and the engine must outlive the front-end.
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=child_env(requested_storage(storage)),  # the URL off argv: `ps` shows argv
        )
        loop = asyncio.get_running_loop()
        reader, out_transport = await _read_pipe(loop, process.stdout)
        errors, err_transport = await _read_pipe(loop, process.stderr)
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(), process.stdin
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        link = cls(reader, writer, process=process, errors=errors)
        link._transports = [out_transport, err_transport]
        return link

    async def next_event(self) -> p.Event | None:
        """The next event, or None when the stream ended. Undecodable lines become
        `ErrorRaised` events (a newer engine may send types this front-end lacks). A
        broken connection is one `ErrorRaised`, then the end: the reader raises the same
        error on every later read (a killed engine that had not read our last command
        resets the socket), and answering each with an event spun the front-end through
        all the machine's memory."""
        while True:
            if self._broken:
                line = b""
            else:
                try:
                    line = await self._reader.readline()
                except OSError as exc:  # ConnectionResetError and kin: sticky
                    self._broken = True
                    return p.ErrorRaised(message=f"engine stream broken: {exc}")
                except (asyncio.LimitOverrunError, ValueError) as exc:  # the line is dropped
                    return p.ErrorRaised(message=f"engine line too long, skipped: {exc}")
            if not line:
                if self._process is not None:
                    await self._wait_exit(10)
                    if self._stderr_task is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(self._stderr_task, 2)
                return None
            if not line.strip():
                continue
            try:
                return p.decode_event(line)
            except p.ProtocolError as exc:
                return p.ErrorRaised(message=f"unreadable engine line: {exc}")

    async def send(self, command: p.Command) -> None:
        if self._writer is None:
            raise ConnectionError("not connected to an engine")
        self._writer.write((p.encode(command) + "\n").encode())
        await self._writer.drain()

    def new_id(self) -> str:
        return f"{self._prefix}{next(self._ids)}"

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stderr_tail(self, n: int = 20) -> list[str]:
        return list(self._stderr)[-n:]

    async def detach(self) -> None:
        """Stop talking; the engine keeps running (headless)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None

    async def close(self) -> None:
        """Detach and release the pipes; the engine is never killed from here."""
        await self.detach()
        if self._stderr_task is not None:
            if self._process is not None and self._process.poll() is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._stderr_task, 1)
            self._stderr_task.cancel()
        for transport in self._transports:
            transport.close()  # the engine's next write gets EPIPE, which it ignores
        self._transports = []

    async def _release_when_listening(self, lock: StartLock, sock: Path, before: Any) -> None:
        """Hold the start lock until this engine listens (its socket file is new) or it
        has ended; the front-ends waiting on the lock then attach to it."""
        try:
            while self._process is not None and self._process.poll() is None:
                now = _identity(sock)
                if now is not None and now != before:
                    return
                await asyncio.sleep(POLL_S)
        finally:
            lock.release()

    async def _wait_exit(self, timeout: float) -> None:
        assert self._process is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while self._process.poll() is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    async def _pump_stderr(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue
            if not line:
                return
            self._stderr.append(line.decode(errors="replace").rstrip("\n"))


async def _read_pipe(
    loop: asyncio.AbstractEventLoop, pipe: IO[bytes] | None
) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    assert pipe is not None
    reader = asyncio.StreamReader(limit=STREAM_LIMIT)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader, transport


def _identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, change time, mode) of a file, None when missing: a new socket differs."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_ctime_ns, st.st_mode


def lock_path(folder: Path) -> Path:
    """The start lock of the campaign whose outputs are `folder`: a file of this user's in
    the temporary directory, named after the folder, so a front-end writes nothing in
    outputs/ before the engine has checked the campaign (a bad config leaves nothing)."""
    import hashlib
    import tempfile

    where = Path(tempfile.gettempdir()) / f"hpotui-{os.getuid()}"
    where.mkdir(mode=0o700, exist_ok=True)
    name = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:20]
    return where / f"start-{name}.lock"


class StartLock:
    """The campaign's start lock (`lock_path`), held (flock) while a front-end looks for
    the campaign's engine and starts one: see the module docstring. Released by the
    kernel if the front-end dies."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    async def acquire(cls, folder: Path) -> StartLock:
        """Wait (polling, so a cancelled wait leaves no thread holding it) for the lock."""
        fd = os.open(lock_path(folder), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return cls(fd)
                except OSError as error:
                    if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise
                await asyncio.sleep(POLL_S)
        except BaseException:
            os.close(fd)
            raise

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
