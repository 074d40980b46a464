"""Hosts in storage: records, lost machines, commands with who/when, and how a machine
obeys them (engine.fleet.host_records, engine.fleet.control)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.fleet.control import HostControl, host_record
from engine.fleet.host_records import (
    HostRecord,
    host_views,
    largest_live_memory,
    publish,
    read_command,
    read_records,
    send_command,
)
from engine.storage.backend import open_storage
from engine.storage.queue import CampaignQueue
from engine.worker.heartbeat import HeartbeatSettings, record_settings
from tests.fleet.campaignhelp import make_campaign


@pytest.fixture
def queue(tmp_path: Path) -> CampaignQueue:
    queue = make_campaign(open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=None))
    record_settings(queue.storage, queue, HeartbeatSettings(10, 30))
    return queue


def _record(host: str, **extra: object) -> HostRecord:
    record = HostRecord(host=host, role="node", device="cpu", memory_bytes=2**30, workers=2)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_records_are_read_back_and_a_silent_machine_is_lost(queue: CampaignQueue) -> None:
    publish(queue.storage, queue, _record("b", running=["1K_h1#3"], thermal="warning"))
    publish(queue.storage, queue, _record("a", state="working"))
    records = read_records(queue.storage, queue)
    assert [r.host for r in records] == ["a", "b"]
    assert records[1].running == ["1K_h1#3"] and records[1].thermal == "warning"
    now = time.time()
    views = {v["host"]: v for v in host_views(queue.storage, queue, now=now)}
    assert views["a"]["status"] == "working"
    later = {v["host"]: v for v in host_views(queue.storage, queue, now=now + 31)}
    assert later["a"]["status"] == "lost"  # grace 30 s: not seen for 31
    assert later["a"]["seen_s_ago"] >= 31
    assert largest_live_memory(list(views.values())) == 2**30
    assert largest_live_memory(list(later.values())) is None  # nobody live


def test_a_machine_that_exited_is_not_lost(queue: CampaignQueue) -> None:
    publish(queue.storage, queue, _record("a", state="exited"))
    (view,) = host_views(queue.storage, queue, now=time.time() + 3600)
    assert view["status"] == "exited"


def test_commands_are_checked_and_recorded_with_who_and_when(queue: CampaignQueue) -> None:
    with pytest.raises(UserError, match=r"no host 'zz'.*hosts: none"):
        send_command(queue.storage, queue, "zz", "drain")
    publish(queue.storage, queue, _record("b"))
    with pytest.raises(UserError, match="unknown host command 'nap'"):
        send_command(queue.storage, queue, "b", "nap")
    for bad in (None, 0, 10_000):
        with pytest.raises(UserError, match="workers"):
            send_command(queue.storage, queue, "b", "workers", bad)
    before = time.time()
    sent = send_command(queue.storage, queue, "b", "drain", by="ana@laptop")
    stored = read_command(queue.storage, queue, "b")
    assert stored == sent and stored.by == "ana@laptop" and stored.at >= before - 1
    again = send_command(queue.storage, queue, "b", "workers", 3, by="ana@laptop")
    assert again.seq > sent.seq and again.workers == 3
    assert "workers 3 (by ana@laptop at" in again.describe()


def test_a_machine_obeys_each_new_command_once(queue: CampaignQueue) -> None:
    publish(queue.storage, queue, _record("b"))
    send_command(queue.storage, queue, "b", "drain")  # given before it started: history
    clock = [0.0]
    control = HostControl(queue.storage, queue, "b", "node", clock=lambda: clock[0])
    assert control.poll() is None and not control.holding

    def step() -> object:
        clock[0] += 1.5
        return control.poll()

    send_command(queue.storage, queue, "b", "drain", by="x@y")
    orders = step()
    assert orders is not None and orders.controls == ["hold"] and "x@y" in orders.message
    assert step() is None  # obeyed once
    assert control.holding and control.state(1) == "draining" and control.state(0) == "drained"

    send_command(queue.storage, queue, "b", "stop")
    orders = step()
    assert orders is not None and orders.controls == ["hold", "interrupt"]
    assert control.state(0) == "stopped"

    send_command(queue.storage, queue, "b", "resume")
    orders = control.orders(read_command(queue.storage, queue, "b"), thermal_hold=True)  # type: ignore[arg-type]
    assert orders.controls == []  # too hot: the thermal policy still holds it
    send_command(queue.storage, queue, "b", "resume")
    orders = step()
    assert orders is not None and orders.controls == ["release"] and not control.holding

    send_command(queue.storage, queue, "b", "workers", 4)
    orders = step()
    assert orders is not None and orders.workers == 4 and orders.controls == []


def test_the_record_says_what_was_obeyed_and_is_written_when_due(queue: CampaignQueue) -> None:
    publish(queue.storage, queue, _record("b"))
    clock = [0.0]
    control = HostControl(queue.storage, queue, "b", "node", clock=lambda: clock[0])
    assert control.publish_s == 10  # the grace (30 s) over 3

    def record(state: str) -> HostRecord:
        return host_record(
            "b", "node", "cpu", 2**20, workers=1, running=[], thermal="ok", state=state
        )

    assert control.publish(record("idle"))
    clock[0] += 1
    assert not control.publish(record("idle"))  # nothing changed, not due
    assert control.publish(record("working"))  # a change is written at once
    clock[0] += 11
    assert control.publish(record("working"))  # due
    send_command(queue.storage, queue, "b", "drain", by="ana@laptop")
    clock[0] += 2
    assert control.poll() is not None
    assert control.publish(record("draining"))
    (view,) = host_views(queue.storage, queue)
    assert view["status"] == "draining" and view["memory_bytes"] == 2**20
    assert view["command"]["action"] == "drain" and view["command"]["by"] == "ana@laptop"
