"""Writes data/recorded.jsonl: a fixed event stream (fixed timestamps, fake hardware) of a
small campaign mid-way, used by the snapshot tests. Run it again only to change the
scenario: `python tests/tui/make_recording.py` (then update the snapshots)."""

from __future__ import annotations

import math
import random
from pathlib import Path

from engine.protocol import (
    PROTOCOL_VERSION,
    EpochEnded,
    Event,
    ExperimentFinished,
    ExperimentStarted,
    ExperimentStatus,
    HardwareSampled,
    Hello,
    LogLine,
    QueueSnapshot,
    ThermalChanged,
    TrialFinished,
    TrialStarted,
    encode,
)

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
ARCHS = {
    "2M": [(128, 8, 4, 512, 1_650_000), (192, 4, 8, 768, 1_910_000), (256, 2, 8, 512, 2_120_000)],
    "20M": [(512, 6, 8, 2048, 19_200_000), (768, 3, 8, 1536, 21_500_000)],
}


def sample(ts: float, k: int) -> dict[str, object]:
    cores = [round(40 + 50 * abs(math.sin(0.7 * k + i)), 1) for i in range(8)]
    temp = 61.0 + 4 * math.sin(k / 3)
    reading = lambda v: {"value": v, "unavailable": None}  # noqa: E731
    return {
        "ts": ts,
        "platform": "linux",
        "cpu_percent_per_core": cores,
        "cpu_freq_mhz": reading(3200.0),
        "cpu_freq_max_mhz": reading(4200.0),
        "cpu_throttled": False,
        "load_avg": [5.1, 4.8, 4.2],
        "memory_used_bytes": 22 * 2**30,
        "memory_available_bytes": 42 * 2**30,
        "memory_total_bytes": 64 * 2**30,
        "swap_used_bytes": 0,
        "swap_growth_bytes_per_s": 0.0,
        "campaign_cpu_percent": 510.0,
        "campaign_rss_bytes": 6 * 2**30,
        "temperatures_c": {"cpu": reading(round(temp, 1))},
        "temperature_max_c": reading(round(temp, 1)),
        "thermal_pressure": None,
        "thermal_pressure_unavailable": "linux has no OS thermal pressure",
        "gpus": [],
        "gpu_unavailable": "no NVIDIA driver",
        "accelerator_memory_bytes": {"value": None, "unavailable": "no accelerator"},
    }


def events() -> list[Event]:
    rng = random.Random(7)
    names = [f"{b}_h{h}" for b in ("2M", "20M") for h in (1, 3, 5)]
    rows = {
        n: ExperimentStatus(
            name=n,
            position=i,
            budget=n.split("_")[0],
            horizon=int(n.split("h")[1]),
            task="threshold_1pct",
            state="queued",
            n_trials=8,
            study_name=f"demo/{n}",
        )
        for i, n in enumerate(names)
    }
    t = T0
    out: list[Event] = [
        Hello(
            protocol_version=PROTOCOL_VERSION,
            engine_version="0.1.0",
            campaign="demo",
            config_path="configs/demo.toml",
            storage="outputs/demo/optuna.journal",
            pid=4242,
            host="lab-mac",
            workers=2,
            ts=t,
        ),
        ThermalChanged(state="ok", previous="unknown", reason="62°C below 85°C", ts=t),
    ]

    def snapshot() -> QueueSnapshot:
        return QueueSnapshot(experiments=[rows[n] for n in names], workers=2, ts=t)

    out.append(snapshot())
    k = 0
    for name, n_done in (("2M_h1", 8), ("2M_h5", 5), ("20M_h1", 3), ("2M_h3", 3)):
        row = rows[name]
        row.state = "running"
        out.append(ExperimentStarted(experiment=name, ts=t))
        best = None
        for trial in range(n_done):
            d, layers, heads, ff, n_params = ARCHS[row.budget][trial % len(ARCHS[row.budget])]
            arch = {"d_model": d, "n_layers": layers, "n_heads": heads, "d_ff": ff}
            out.append(
                TrialStarted(
                    experiment=name,
                    trial=trial,
                    params={"lr": 3e-4},
                    architecture=arch,
                    n_params=n_params,
                    worker="w0",
                    host="lab-mac",
                    forced_extreme=trial < 2,
                    ts=t,
                )
            )
            base = 0.62 - 0.01 * row.horizon - 0.02 * (row.budget == "20M") + rng.uniform(0, 0.03)
            for epoch in range(1, 7):
                t += 30
                out.append(
                    EpochEnded(
                        experiment=name,
                        trial=trial,
                        epoch=epoch,
                        train_loss=round(base + 0.2 / epoch, 4),
                        val_loss=round(base + 0.12 / epoch + 0.004 * epoch, 4),
                        elapsed_s=30.0 * epoch,
                        ts=t,
                    )
                )
                k += 1
                out.append(HardwareSampled(sample=sample(t, k), ts=t))
            state = "pruned" if trial == 2 else ("failed" if trial == 4 else "complete")
            value = None if state == "failed" else round(base + 0.02, 4)
            out.append(
                TrialFinished(
                    experiment=name,
                    trial=trial,
                    state=state,
                    value=value,
                    duration_s=180.0,
                    worker="w0",
                    host="lab-mac",
                    architecture=arch,
                    n_params=n_params,
                    metrics={"val_auc": round(0.55 + rng.uniform(0, 0.05), 3)},
                    reason="out of memory at batch 512" if state == "failed" else "",
                    ts=t,
                )
            )
            if state == "complete":
                row.n_complete += 1
                best = value if best is None or (value is not None and value < best) else best
            elif state == "pruned":
                row.n_pruned += 1
            else:
                row.n_failed += 1
            row.best_value = best
            row.eta_s = 180.0 * (row.n_trials - trial - 1)
            out.append(snapshot())
        if n_done == row.n_trials:
            row.state, row.eta_s = "done", None
            out.append(ExperimentFinished(experiment=name, state="done", best_value=best, ts=t))
        elif name == "2M_h5":
            row.state, row.eta_s = "paused", None
            out.append(LogLine(level="warning", message="2M_h5 paused by the user", ts=t))
        elif name == "20M_h1":
            row.state, row.eta_s = "skipped", None
        out.append(snapshot())
    # 2M_h3 has a trial running: a live curve.
    row = rows["2M_h3"]
    row.n_running = 1
    arch = {"d_model": 192, "n_layers": 4, "n_heads": 8, "d_ff": 768}
    out.append(
        TrialStarted(
            experiment="2M_h3",
            trial=3,
            params={"lr": 2e-4},
            architecture=arch,
            n_params=1_910_000,
            worker="w1",
            host="lab-mac",
            ts=t,
        )
    )
    out.append(snapshot())
    for epoch in range(1, 12):
        t += 30
        out.append(
            EpochEnded(
                experiment="2M_h3",
                trial=3,
                epoch=epoch,
                train_loss=round(0.58 + 0.25 / epoch, 4),
                val_loss=round(0.6 + 0.15 / epoch, 4),
                elapsed_s=30.0 * epoch,
                ts=t,
            )
        )
        k += 1
        out.append(HardwareSampled(sample=sample(t, k), ts=t))
    out.append(LogLine(level="debug", message="worker w1: micro-batch 256 fits", ts=t))
    out.append(LogLine(level="info", message="2M_h3 trial 3 epoch 11 val 0.6136", ts=t))
    out.append(
        LogLine(level="error", message="worker w0: trial 4 of 2M_h5 failed: out of memory", ts=t)
    )
    return out


def main() -> None:
    path = Path(__file__).parent / "data" / "recorded.jsonl"
    path.write_text("".join(encode(e) + "\n" for e in events()), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
