"""Notifications delivered for real: apprise's json:// plugin posting to a loopback HTTP
server, one test per event kind plus the rate limit, the bounded queue and the masking."""

from __future__ import annotations

import pytest
from http_sink import JsonSink, refused_url

from engine import notify
from engine import protocol as p
from engine.notify.config import EVENTS, NotifySpec
from engine.notify.notifier import Notifier

pytest.importorskip("apprise", reason="apprise is not installed (pip install -e '.[notify]')")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(urls: list[str], logs: list[tuple[str, str]] | None = None, **kw: object) -> Notifier:
    sink_logs = logs if logs is not None else []
    return Notifier(
        "tiny",
        NotifySpec(urls=tuple(urls), on=kw.pop("on", EVENTS)),  # type: ignore[arg-type]
        host="box1",
        log=lambda level, text: sink_logs.append((level, text)),
        **kw,  # type: ignore[arg-type]
    )


def _snapshot() -> p.QueueSnapshot:
    rows = [
        p.ExperimentStatus("10K_h1", 0, "10K", 1, "t", "done", 3, best_value=0.6131),
        p.ExperimentStatus("30K_h1", 1, "30K", 1, "t", "running", 3, best_value=0.6002),
    ]
    return p.QueueSnapshot(experiments=rows, workers=1)


def test_experiment_failed_names_campaign_experiment_best_and_host(sink: JsonSink) -> None:
    notifier = make([sink.url()])
    notifier.on_event(_snapshot())
    notifier.on_event(
        p.ExperimentFinished(
            experiment="10K_h1", state="failed", best_value=0.6131, reason="3 failures in a row"
        )
    )
    notifier.close()
    [message] = sink.wait_for(1)
    assert message["title"] == "hpotui tiny: experiment 10K_h1 failed"
    body = message["message"]
    assert "campaign tiny on box1" in body
    assert "experiment: 10K_h1" in body
    assert "best so far: 0.6131 (10K_h1)" in body
    assert "campaign best so far: 0.6002 (30K_h1)" in body
    assert "3 failures in a row" in body
    assert message["type"] == "info"


def test_thermal_critical(sink: JsonSink) -> None:
    notifier = make([sink.url()])
    notifier.on_event(p.ThermalChanged(state="warning", previous="ok", reason="86 C"))
    notifier.on_event(p.ThermalChanged(state="critical", previous="warning", reason="cpu 96 C"))
    notifier.close()
    [message] = sink.wait_for(1)  # the warning sends nothing
    assert "critical temperature" in message["title"]
    assert "cpu 96 C" in message["message"]
    assert "unknown (no complete trial yet)" in message["message"]


def test_storage_outage_hook(sink: JsonSink) -> None:
    assert notify.storage_outage("no notifier here") is False  # none installed: a no-op
    notifier = make([sink.url()])
    notify.install(notifier)
    try:
        notifier.on_event(p.TrialFinished("30K_h1", 2, "complete", 0.59, 1.0, "w1", "box1"))
        assert notify.storage_outage("postgresql://bob:***@db/hpo: connection refused")
    finally:
        notify.install(None)
    notifier.close()
    [message] = sink.wait_for(1)
    assert message["title"] == "hpotui tiny: the storage cannot be reached"
    assert "connection refused" in message["message"]
    assert "campaign best so far: 0.5900 (30K_h1)" in message["message"]


def test_a_storage_outage_event_notifies_once_per_outage(sink: JsonSink) -> None:
    """The storage layer's `storage_outage` events (engine.storage.outage) reach the
    notifier as a channels sink: one message when the first source starts waiting, none
    for the repeats or the other sources of the same outage, one again for the next."""
    notifier = make([sink.url()], repeat_s=0)
    down = {"reachable": False, "patience_s": 300.0, "error": "connection refused"}
    notifier.on_event(p.StorageOutage(waited_s=0, **down))  # type: ignore[arg-type]
    notifier.on_event(p.StorageOutage(waited_s=10, **down))  # type: ignore[arg-type]
    notifier.on_event(p.StorageOutage(waited_s=0, source="w1", **down))  # type: ignore[arg-type]
    for source in ("engine", "w1"):
        notifier.on_event(
            p.StorageOutage(reachable=True, waited_s=20, patience_s=300, source=source)
        )
    notifier.on_event(p.StorageOutage(waited_s=0, source="w1", **down))  # type: ignore[arg-type]
    notifier.close()
    first, second = sink.wait_for(2)
    assert first["title"] == "hpotui tiny: the storage cannot be reached"
    assert "engine: connection refused" in first["message"]
    assert "w1: connection refused" in second["message"]
    assert len(sink.received) == 2


def test_engine_crashed_and_campaign_done(sink: JsonSink) -> None:
    notifier = make([sink.url()])
    assert notifier.engine_crashed("RuntimeError: boom")
    assert notifier.campaign_done("campaign complete")
    notifier.close()
    first, second = sink.wait_for(2)
    assert first["title"] == "hpotui tiny: the engine crashed"
    assert "RuntimeError: boom" in first["message"]
    assert second["title"] == "hpotui tiny: campaign finished: campaign complete"


def test_only_the_events_listed_in_on_are_sent(sink: JsonSink) -> None:
    notifier = make([sink.url()], on=("campaign_done",))
    assert not notifier.engine_crashed("x")
    assert not notifier.storage_outage("x")
    assert notifier.campaign_done("campaign complete")
    notifier.close()
    assert [m["title"] for m in sink.wait_for(1)] == [
        "hpotui tiny: campaign finished: campaign complete"
    ]


def test_rate_limit_repeats_and_bursts(sink: JsonSink) -> None:
    clock = Clock()
    notifier = make([sink.url()], clock=clock, repeat_s=60, burst=3, window_s=600)
    assert notifier.storage_outage("down")
    assert not notifier.storage_outage("still down")  # same kind and subject, too soon
    clock.now += 61
    assert notifier.storage_outage("down again")
    assert notifier.experiment_failed("a", "r")  # 3rd in the window
    assert not notifier.experiment_failed("b", "r")  # the burst is spent
    assert notifier.campaign_done("campaign complete")  # the last word always goes
    notifier.close()
    messages = sink.wait_for(4)
    assert len(messages) == 4
    held = "(1 earlier notification(s) held back by the rate limit)"
    assert held in messages[1]["message"]  # the repeat held back before it
    assert held in messages[3]["message"]  # the burst's victim
    assert held not in messages[2]["message"]


def test_a_failing_url_is_logged_once_masked_and_the_others_still_get_messages(
    sink: JsonSink,
) -> None:
    logs: list[tuple[str, str]] = []
    bad = refused_url()
    notifier = make([bad, sink.url()], logs, repeat_s=0)
    for i in range(3):
        assert notifier.experiment_failed(f"e{i}", "r")
    notifier.close()
    assert len(sink.wait_for(3)) == 3
    assert notifier.sender is not None and notifier.sender.failed == 3
    assert len(logs) == 1
    level, text = logs[0]
    assert level == "warning"
    assert "URL 1 (json://***)" in text
    for secret in ("s3cretpass", "alice", "private-token-path"):
        assert secret not in text


def test_sending_never_blocks_the_caller() -> None:
    slow = JsonSink(hold=True)  # every request waits until released
    try:
        notifier = make([slow.url()], repeat_s=0, burst=1000)
        results = [notifier.experiment_failed(f"e{i}", "r") for i in range(50)]
        assert slow.received == []  # every call returned while the service hung
        assert results.count(False) >= 50 - 1 - 32  # a full queue drops, never waits
        assert notifier.sender is not None and notifier.sender.dropped >= 17
    finally:
        slow.release()
        slow.close()


def test_no_urls_means_no_sender() -> None:
    notifier = make([])
    assert not notifier.active
    assert not notifier.campaign_done("campaign complete")


@pytest.mark.parametrize("sep", [", ", " ", "\n"])
def test_env_urls_add_to_the_config(sep: str) -> None:
    spec = NotifySpec(urls=("json://cfg/1",))
    env = {"HPOTUI_NOTIFY_URLS": sep.join(["ntfy://topic", "json://cfg/1"])}
    assert spec.with_env(env).urls == ("json://cfg/1", "ntfy://topic")
