"""The policy as a state machine, driven by scripted samples and a fake clock."""

from __future__ import annotations

from dataclasses import replace

from monitor_helpers import make_sample

from engine.campaign.model import MonitorSpec
from engine.monitor.policy import MB, PolicyDecision, ThermalPolicy
from engine.monitor.sample import HardwareSample
from engine.protocol import ThermalChanged


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(
    policy: ThermalPolicy,
    clock: Clock,
    script: list[tuple[float, HardwareSample]],
    running: bool = True,
) -> list[PolicyDecision]:
    """Feed (seconds-after-previous, sample) steps; return every decision."""
    out = []
    for dt, sample in script:
        clock.now += dt
        out.append(policy.update(sample, running))
    return out


def states(decisions: list[PolicyDecision]) -> list[str]:
    return [d.state for d in decisions]


def test_normal_temperatures_stay_ok_without_events() -> None:
    clock = Clock()
    policy = ThermalPolicy(MonitorSpec(), clock)
    decisions = run(policy, clock, [(1, make_sample(t)) for t in (50, 70, 84, 83)])
    assert states(decisions) == ["ok"] * 4
    assert all(d.allow_new_trials and not d.stop_running_trials for d in decisions)
    assert all(d.transition is None for d in decisions)


def test_warning_then_cool_down_with_hysteresis() -> None:
    clock = Clock()
    policy = ThermalPolicy(MonitorSpec(warning_c=85, hysteresis_c=5, cool_down_s=60), clock)
    hot = policy.update(make_sample(86), True)
    assert hot.state == "warning" and not hot.allow_new_trials and not hot.stop_running_trials
    assert hot.transition == ("ok", "warning", "temperature 86 C >= warning 85 C")
    # 84 and 82 are below the threshold but not below threshold - hysteresis (80)
    band = run(policy, clock, [(30, make_sample(84)), (30, make_sample(82)), (30, make_sample(81))])
    assert states(band) == ["warning"] * 3
    # below 80 for 59 s is not enough; a touch of 80 restarts the count
    cooling = run(
        policy, clock, [(1, make_sample(79)), (59, make_sample(75)), (1, make_sample(80))]
    )
    assert states(cooling) == ["warning"] * 3
    again = run(policy, clock, [(1, make_sample(70)), (30, make_sample(70)), (29, make_sample(70))])
    assert states(again) == ["warning"] * 3
    clock.now += 1
    done = policy.update(make_sample(70), True)
    assert done.state == "ok" and done.allow_new_trials
    assert done.transition is not None and done.transition[:2] == ("warning", "ok")
    assert "cool for 60 s" in done.transition[2]


def test_critical_stops_trials_then_pauses_until_cool() -> None:
    clock = Clock()
    policy = ThermalPolicy(MonitorSpec(), clock)
    crit = policy.update(make_sample(96), True)
    assert crit.state == "critical" and crit.stop_running_trials and not crit.allow_new_trials
    assert crit.transition == ("ok", "critical", "temperature 96 C >= critical 95 C")
    event = crit.event()
    assert (
        isinstance(event, ThermalChanged) and event.previous == "ok" and event.state == "critical"
    )
    still = run(policy, clock, [(1, make_sample(97))])
    assert states(still) == ["critical"] and still[0].transition is None
    paused = run(policy, clock, [(1, make_sample(90))], running=False)
    assert paused[0].state == "paused" and not paused[0].allow_new_trials
    assert paused[0].transition is not None and paused[0].transition[:2] == ("critical", "paused")
    # a warning-level temperature keeps it paused; cool for 60 s releases it
    decisions = run(
        policy,
        clock,
        [(1, make_sample(86)), (1, make_sample(70)), (59, make_sample(70)), (1, make_sample(70))],
        running=False,
    )
    assert states(decisions) == ["paused", "paused", "paused", "ok"]
    # and a relapse during the pause goes straight back to critical
    policy2 = ThermalPolicy(MonitorSpec(), clock)
    relapse = run(
        policy2, clock, [(1, make_sample(95)), (1, make_sample(80)), (1, make_sample(99))]
    )
    assert states(relapse) == ["critical", "paused", "critical"]


def test_unknown_temperature_run_warns_once_and_keeps_going() -> None:
    clock = Clock()
    policy = ThermalPolicy(MonitorSpec(on_unknown_temperature="run"), clock)
    decisions = run(policy, clock, [(1, make_sample(None)) for _ in range(5)])
    assert states(decisions) == ["unknown"] * 5
    assert all(d.allow_new_trials for d in decisions)
    transitions = [d.transition for d in decisions if d.transition]
    assert len(transitions) == 1  # warned once
    previous, new, reason = transitions[0]
    assert (previous, new) == ("ok", "unknown")
    assert "no sensor exposed" in reason and "on_unknown_temperature = run" in reason
    back = policy.update(make_sample(55), True)
    assert back.state == "ok" and back.transition and "readable again" in back.transition[2]


def test_unknown_temperature_pause_starts_nothing() -> None:
    clock = Clock()
    policy = ThermalPolicy(MonitorSpec(on_unknown_temperature="pause"), clock)
    decisions = run(policy, clock, [(1, make_sample(None)) for _ in range(3)])
    assert states(decisions) == ["unknown"] * 3
    assert not any(d.allow_new_trials for d in decisions)
    assert not any(d.stop_running_trials for d in decisions)


def test_sensor_lost_while_hot_under_pause_never_cools() -> None:
    clock = Clock()
    policy = ThermalPolicy(MonitorSpec(on_unknown_temperature="pause"), clock)
    policy.update(make_sample(90), True)
    decisions = run(policy, clock, [(30, make_sample(None)) for _ in range(10)])
    assert states(decisions) == ["warning"] * 10  # no evidence of cooling, no new trials


def test_memory_floor_is_a_warning() -> None:
    clock = Clock()
    policy = ThermalPolicy(MonitorSpec(min_available_memory_gb=2.0, cool_down_s=10), clock)
    low = policy.update(make_sample(50, available_gb=1.5), True)
    assert low.state == "warning" and not low.allow_new_trials and not low.stop_running_trials
    assert low.transition and "memory: 1.50 GB available < floor 2 GB" in low.transition[2]
    decisions = run(
        policy, clock, [(1, make_sample(50, available_gb=4)), (10, make_sample(50, available_gb=4))]
    )
    assert states(decisions) == ["warning", "ok"]


def test_swap_thrash_while_a_trial_runs_is_critical() -> None:
    clock = Clock()
    spec = MonitorSpec(max_swap_growth_mb_per_s=50)
    policy = ThermalPolicy(spec, clock)
    # one burst (a model being loaded) is judged over a 10 s window: 300 MB in 10 s is fine
    burst = [(0, make_sample(50, swap_bytes=0))] + [
        (1, make_sample(50, swap_bytes=300 * MB)) for _ in range(12)
    ]
    assert set(states(run(policy, clock, burst))) == {"ok"}
    # steady growth of 100 MB/s trips within the window
    swap = 300 * MB
    decisions = []
    for _ in range(12):
        swap += 100 * MB
        decisions += run(policy, clock, [(1, make_sample(50, swap_bytes=swap))])
    assert decisions[-1].state == "critical" and decisions[-1].stop_running_trials
    first = next(d for d in decisions if d.transition)
    assert (
        first.transition
        and "swap growing" in first.transition[2]
        and "while a trial runs" in first.transition[2]
    )


def test_swap_growth_without_a_trial_is_ignored() -> None:
    clock = Clock()
    policy = ThermalPolicy(MonitorSpec(), clock)
    decisions = run(
        policy,
        clock,
        [(1, make_sample(50, swap_bytes=i * 500 * MB)) for i in range(20)],
        running=False,
    )
    assert set(states(decisions)) == {"ok"}


def test_macos_pressure_levels() -> None:
    clock = Clock()
    policy = ThermalPolicy(MonitorSpec(), clock)
    # no temperature, but the OS pressure is a thermal signal: protection is active
    assert policy.update(make_sample(None, pressure="nominal"), True).state == "ok"
    serious = policy.update(make_sample(None, pressure="serious"), True)
    assert (
        serious.state == "warning"
        and serious.transition
        and "pressure serious" in serious.transition[2]
    )
    assert policy.update(make_sample(None, pressure="critical"), True).state == "critical"
    policy2 = ThermalPolicy(MonitorSpec(), clock)
    assert policy2.update(make_sample(None, pressure="Heavy"), True).state == "warning"
    assert policy2.update(make_sample(None, pressure="Trapping"), True).state == "critical"


def test_worst_signal_gives_the_reason() -> None:
    clock = Clock()
    policy = ThermalPolicy(MonitorSpec(), clock)
    d = policy.update(replace(make_sample(88, available_gb=0.5), thermal_pressure="critical"), True)
    assert d.state == "critical" and d.transition and "pressure critical" in d.transition[2]
