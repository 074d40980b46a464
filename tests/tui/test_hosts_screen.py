"""The Hosts view: every machine from the engine's `hosts` events, a lost and a draining
one shown as such, and its keys sending `control_host` commands for the selected one."""

from __future__ import annotations

import time

from textual.widgets import DataTable

from engine.protocol import ControlHost, HostsChanged
from hpotui.screens.help import HelpScreen
from hpotui.screens.hosts import HostsScreen
from tests.tui.conftest import replay_app, settled, until
from tests.tui.fake_link import recorded_events

N = len(recorded_events())


def _host(name: str, status: str, **extra: object) -> dict[str, object]:
    view: dict[str, object] = {
        "host": name,
        "role": "node",
        "device": "cuda",
        "memory_bytes": 80 * 2**30,
        "workers": 2,
        "running": [],
        "thermal": "ok",
        "state": status,
        "status": status,
        "last_seen": time.time(),
        "seen_s_ago": 2.0,
        "version": "0.1.0",
        "pid": 4242,
        "command": None,
    }
    view.update(extra)
    return view


HOSTS = [
    _host(
        "laptop",
        "working",
        role="engine",
        device="cpu",
        memory_bytes=12 * 2**30,
        running=["2M_h1#14"],
        workers=1,
    ),
    _host(
        "gpu-box-2",
        "draining",
        running=["2M_h1#15"],
        command={"action": "drain", "by": "ana@laptop", "at": 1767225590.0, "seq": 1},
    ),
    _host("gpu-box-3", "lost", state="working", thermal="critical", seen_s_ago=412.0),
]


def screen_text(app: object) -> str:
    """The screen as plain text lines (what a person sees, without colours)."""
    lines = app.screen._compositor.render_strips()  # type: ignore[attr-defined]
    return "\n".join(strip.text.rstrip() for strip in lines)


async def test_hosts_view_shows_lost_and_draining_hosts_and_controls_them() -> None:
    app, links = replay_app()
    async with app.run_test(size=(150, 24)) as pilot:
        await settled(pilot, N)
        links[0].push(HostsChanged(hosts=HOSTS))
        await until(pilot, lambda: len(app.state.hosts) == 3)
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
        screen = app.screen
        assert isinstance(screen, HostsScreen)
        table = screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 3)
        rows = {str(table.get_row_at(i)[0]): table.get_row_at(i) for i in range(3)}
        assert str(rows["gpu-box-2"][2]) == "draining"
        assert str(rows["gpu-box-3"][2]) == "lost"
        assert str(rows["laptop"][2]) == "working"
        assert "drain by ana@laptop" in str(rows["gpu-box-2"][-1])
        text = screen_text(app)
        assert "lost" in text and "draining" in text and "3 machine(s)" in text
        print(text)  # the capture quoted in docs/distributed.md

        # keys act on the selected machine: the first row is gpu-box-2 (sorted by name)
        await pilot.press("r", "down", "plus", "down", "x")
        await until(pilot, lambda: len(links[0].sent) >= 4)
        sent = [c for c in links[0].sent if isinstance(c, ControlHost)]
        assert [(c.host, c.action, c.workers) for c in sent] == [
            ("gpu-box-2", "resume", None),
            ("gpu-box-3", "workers", 3),
            ("laptop", "stop", None),
        ]

        # a host comes back: the view follows the next event while it is open
        links[0].push(HostsChanged(hosts=[*HOSTS[:2], _host("gpu-box-3", "working")]))
        await until(pilot, lambda: "lost" not in screen_text(app))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HostsScreen))


async def test_help_lists_the_hosts_keys() -> None:
    app, _ = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, N)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = dict(app.screen.keys)  # type: ignore[attr-defined]
        assert "Hosts" in shown["h"]
        assert "drain" in shown["d"] and "stop" in shown["x"]
