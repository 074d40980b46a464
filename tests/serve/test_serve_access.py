"""Who may reach `hpotui serve`: loopback by default, a token anywhere else, the token
never printed; all over real HTTP to a real server process (no browser needed)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpotui.cli import main

pytest.importorskip("textual_serve", reason="textual-serve is not installed (.[serve])")
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "correct-horse-battery-staple-42"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str, cookie: str | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    response = connection.getresponse()
    response.read()
    return response


@pytest.fixture
def with_token(workspace: Path) -> Iterator[tuple[int, Path]]:
    port = _free_port()
    out = workspace / "serve.log"
    with out.open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hpotui.cli",
                "serve",
                str(ROOT / "configs" / "tiny.toml"),
                "--port",
                str(port),
            ],
            cwd=workspace,
            env={**os.environ, "HPOTUI_HOME": str(workspace), "HPOTUI_SERVE_TOKEN": TOKEN},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                assert server.poll() is None, out.read_text()
                time.sleep(0.1)
            yield port, out
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)


def test_the_token_is_required_and_traded_for_a_cookie(with_token: tuple[int, Path]) -> None:
    port, out = with_token
    for path in ("/", "/ws", "/static/js/textual.js", "/?token=wrong-token-wrong-token"):
        assert _get(port, path).status == 401, path
    entry = _get(port, f"/?token={TOKEN}&fontsize=14")
    assert entry.status == 302
    assert entry.getheader("Location") == "/?fontsize=14"  # the token leaves the address bar
    cookie = entry.getheader("Set-Cookie") or ""
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    page = _get(port, "/", cookie=cookie.split(";")[0])
    assert page.status == 200
    assert _get(port, "/", cookie="hpotui_token=forged").status == 401
    text = out.read_text()
    assert f"http://127.0.0.1:{port}/?token=<your token>" in text
    assert TOKEN not in text  # neither the banner nor an access log shows it


def test_the_page_uses_the_address_the_browser_used(with_token: tuple[int, Path]) -> None:
    """Through `ssh -L 9000:127.0.0.1:8000` the browser asks for localhost:9000; the
    page must point its websocket there, not at the server's own port."""
    port, _ = with_token
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", f"/?token={TOKEN}")
    cookie = (connection.getresponse().getheader("Set-Cookie") or "").split(";")[0]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/", headers={"Cookie": cookie, "Host": "localhost:9000"})
    page = connection.getresponse().read().decode()
    assert "ws://localhost:9000/ws" in page and f":{port}/" not in page


def test_a_public_address_without_a_token_is_refused(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HPOTUI_SERVE_TOKEN", raising=False)
    code = main(["serve", str(ROOT / "configs" / "tiny.toml"), "--host", "0.0.0.0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "HPOTUI_SERVE_TOKEN" in err[0] and "ssh -N -L 8000:127.0.0.1:8000" in err[0]


def test_a_short_token_is_refused(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["serve", str(ROOT / "configs" / "tiny.toml"), "--host", "0.0.0.0", "--token", "abc"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "too short" in err and "abc" not in err  # the token is never echoed


def test_a_bad_config_is_reported_once_before_serving(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = workspace / "bad.toml"
    config.write_text("[campaign]\nname = 3\n")
    assert main(["serve", str(config)]) == 2
    assert f"{config}:2: campaign.name" in capsys.readouterr().err


def test_a_short_token_is_named_once(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One "hpotui:" prefix, and the setting at fault (it said "hpotui: hpotui serve:")."""
    code = main(
        ["serve", str(ROOT / "configs" / "tiny.toml"), "--host", "0.0.0.0", "--token", "abc"]
    )
    [line] = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and line.startswith("hpotui: --token: the token is too short")
    monkeypatch.setenv("HPOTUI_SERVE_TOKEN", "short")
    assert main(["serve", str(ROOT / "configs" / "tiny.toml"), "--host", "0.0.0.0"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("hpotui: $HPOTUI_SERVE_TOKEN: the token is too short")


def test_bound_to_every_interface_the_address_printed_is_this_hosts() -> None:
    import socket

    from hpotui.commands.serve import addresses

    assert addresses("127.0.0.1", 8767) == ["http://127.0.0.1:8767/"]
    assert addresses("::1", 8767) == ["http://[::1]:8767/"]
    everywhere = addresses("0.0.0.0", 8767)
    assert everywhere[0] == f"http://{socket.gethostname()}:8767/"
    assert not any("0.0.0.0" in a or "127.0.0.1" in a for a in everywhere), everywhere
