"""`hpotui serve` in a real, headless Chromium: the page connects, the dashboard shows
the campaign's experiments in its queue and best-architecture panels, a key pressed in
the page pauses the campaign in storage, and closing the browser leaves the engine
running. Skipped only where no Chromium/chromedriver is installed (no browser download
at run time: CI installs Debian's `chromium` and `chromium-driver`).

Set HPOTUI_SCREENSHOT_TO=docs/serve.png to refresh the screenshot shown in docs/tui.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import psutil
import pytest
from screen import Screen

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="no Chromium and chromedriver installed (Debian: apt-get install chromium "
        "chromium-driver); this test drives a real browser and never downloads one",
    ),
]
pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
pytest.importorskip("textual_serve", reason="textual-serve is not installed (.[serve])")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

# Keeps every binary websocket message (the app's terminal output) for the test to read.
RECORD_JS = """
(() => {
  const Original = window.WebSocket;
  const decoder = new TextDecoder();
  window.__hpotui = {chunks: [], url: null};
  function Recording(url, protocols) {
    const ws = protocols === undefined ? new Original(url) : new Original(url, protocols);
    window.__hpotui.url = String(url);
    ws.addEventListener("message", (e) => {
      if (typeof e.data !== "string") {
        window.__hpotui.chunks.push(decoder.decode(new Uint8Array(e.data), {stream: true}));
      }
    });
    return ws;
  }
  Recording.prototype = Original.prototype;
  Object.assign(Recording, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = Recording;
})();
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: Callable[[], object], timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def served(workspace: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """`hpotui serve` on the tiny campaign (more trials, so it is still running when the
    test presses keys), on a free loopback port; stops the server and the engine after."""
    config = workspace / "tiny.toml"
    config.write_text(
        (ROOT / "configs" / "tiny.toml").read_text().replace("n_trials = 3", "n_trials = 40")
    )
    port = _free_port()
    log = (workspace / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "hpotui.cli", "serve", str(config), "--port", str(port)],
        cwd=workspace,
        env={**os.environ, "HPOTUI_HOME": str(workspace)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        _wait("the server to listen", listening, 60)
        yield f"http://127.0.0.1:{port}/", workspace, server
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        pid_file = workspace / "outputs" / "tiny" / "engine.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            # only while it is still the engine: a pid that ended is soon another process's
            with contextlib.suppress(psutil.Error):
                if "engine" in psutil.Process(pid).cmdline():
                    os.kill(pid, signal.SIGTERM)
                    _wait("the engine to stop", lambda: not psutil.pid_exists(pid), 60)


def _paused_all(workspace: Path) -> bool:
    from engine.storage.backend import default_storage_url, open_storage
    from engine.storage.queue import CampaignQueue

    return CampaignQueue(open_storage(default_storage_url("tiny")), "tiny").paused_all()


@pytest.mark.timeout(900)  # a loaded 2-core machine: the first trial can take minutes
def test_dashboard_in_a_headless_browser(
    served: tuple[str, Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url, workspace, server = served
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)

    def cmdline(process: psutil.Process) -> list[str]:
        try:
            return process.cmdline()
        except psutil.NoSuchProcess:  # exited between the listing and this read
            return []

    tabs = lambda: [  # noqa: E731
        c for c in psutil.Process(server.pid).children(recursive=True) if "--tab" in cmdline(c)
    ]
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_JS})
        driver.get(url)
        screen = Screen(400, 200)
        raw = (tmp_path / "terminal.txt").open("w")  # what the page was sent, for debugging

        def drawn() -> bool:
            data = "".join(driver.execute_script("return window.__hpotui.chunks.splice(0)"))
            raw.write(data)
            screen.feed(data)
            queue, best = screen.panel("Queue"), screen.panel("Best architectures")
            return all(name in panel for name in ("10K_h1", "30K_h1") for panel in (queue, best))

        try:
            _wait("the dashboard to show both experiments in both panels", drawn)
        finally:
            (tmp_path / "screen.txt").write_text(screen.text())
        ws = urlparse(driver.execute_script("return window.__hpotui.url"))
        assert ws.hostname == "127.0.0.1" and ws.path == "/ws" and "width" in parse_qs(ws.query)

        _wait(  # the page follows the campaign live: a finished trial reaches it
            "a finished trial in the best-architecture panel",
            lambda: drawn() and "no completed trial yet" not in screen.panel("Best architectures"),
            600,
        )
        # type as a person does: click the terminal, then press the key. (Chromium 150 and
        # later refuse send_keys on xterm's hidden helper textarea: not interactable.)
        # The click lands on the header's top-left cell, which has no action of its own.
        terminal = driver.find_element(By.CSS_SELECTOR, ".xterm-screen")
        size = terminal.size
        corner = (4 - size["width"] // 2, 4 - size["height"] // 2)  # offsets from the centre
        (
            ActionChains(driver)
            .move_to_element_with_offset(terminal, *corner)
            .click()
            .pause(0.2)
            .send_keys("P")
            .perform()
        )
        _wait("pause-all to reach the storage", lambda: _paused_all(workspace), 60)
        _wait(
            "the queue's title to say so",
            lambda: drawn() and any("Queue" in x and "paused all" in x for x in screen.lines()),
            60,
        )

        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        if target := os.environ.get("HPOTUI_SCREENSHOT_TO"):
            shutil.copy(shot, ROOT / target)
        engine_pid = int((workspace / "outputs" / "tiny" / "engine.pid").read_text())
        assert len(tabs()) == 1
    finally:
        driver.quit()  # closing the browser closes the tab
    _wait("the tab's dashboard process to exit", lambda: not tabs(), 60)
    assert psutil.pid_exists(engine_pid), "closing the tab stopped the engine"
    assert _paused_all(workspace)  # the campaign is as the page left it
