"""First frame of the dashboard on a big stored campaign: opened finished, and attached.

    python bench/first_frame.py [--experiments 12] [--trials 50] [--epochs 20] [--runs 3]
                                [--keep DIR]

Writes a real campaign (12 experiments x 50 trials by default) into an Optuna journal
through Optuna's API as the engine's workers write one (tests/tui/stored_campaign.py:
ask, one report per epoch, the workers' user attributes, tell; some trials pruned, some
failed), plus the events.jsonl an engine would have written while running it (trial
started / epoch / finished lines, a queue snapshot per trial, a hardware sample every
30 s), then times, each in a fresh `python` process, from that process's start to the
first frame whose panels show every stored trial:

- finished: `hpotui CONFIG` on the finished campaign (no engine runs), its view kept
  beside the journal (engine/storage/view_cache.py) as the engine leaves it when it ends;
- finished (cold): the same with no view kept, the journal replayed by Optuna (the
  dashboard then keeps the view for the next time);
- attached: `hpotui CONFIG` while the campaign's engine runs (started here first, on the
  same campaign with its last experiment paused, so it idles without training);
- floor: the same process drawing an app with nothing to load: interpreter start,
  imports and the first frame of an empty screen, the part no loader can remove.

With `--baseline DIR` (a checkout of an earlier commit), that tree's dashboard is timed
the same way afterwards (opened finished: it starts the engine; attached: it attaches to
this tree's engine) and the ratios are printed.

Target (issue 24): full history on screen < 1.5 s, opened finished and attached.
This machine's speed drifts between runs and other work shares its cores: the figures
are medians of --runs runs, printed with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CODE_ENV = "HPOTUI_BENCH_CODE"  # a child times the dashboard of this tree (--baseline)
sys.path.insert(0, os.environ.get(CODE_ENV) or str(ROOT))

BUDGETS = ("10K", "20K", "50K", "100K")
TARGET_S = 1.5


# ---------------------------------------------------------------------------- child


def child(mode: str, config: Path, expect: int) -> int:
    """Run the dashboard headless; print the seconds from this process's start to the
    first frame drawn after every one of `expect` trials was folded (`mode` "floor":
    the first frame of an app fed nothing)."""
    import psutil

    started = psutil.Process().create_time()
    from hpotui.app import HpotuiApp, create_app

    seen: dict[str, float] = {}
    if mode == "floor":

        async def nothing() -> Any:
            from tests.tui.fake_link import ScriptedLink

            return ScriptedLink([])

        app = create_app(config, link_factory=nothing)
    else:
        app = create_app(config)
    original_draw = HpotuiApp._draw
    drawn = {"trials": 0}

    def counting_draw(self: HpotuiApp) -> None:
        original_draw(self)
        drawn["trials"] = sum(len(t) for t in self.state.trials.values())

    app._draw = counting_draw.__get__(app)  # type: ignore[method-assign]
    display = app._display

    def timed_display(screen: Any, renderable: Any) -> None:
        display(screen, renderable)
        if renderable is None or "frame" in seen:
            return
        if mode == "floor" or drawn["trials"] >= expect:
            seen["frame"] = time.time() - started
            seen["cpu"] = time.process_time()  # this process's cpu since it started

    app._display = timed_display  # type: ignore[method-assign]

    async def run() -> None:
        async with app.run_test(headless=True, size=(120, 40)) as pilot:
            deadline = time.monotonic() + 120
            while "frame" not in seen and time.monotonic() < deadline:
                await pilot.pause(0.01)
            seen["engine"] = float(app.link is not None and getattr(app.link, "engine", True))
            link = app.link
            app._leaving = True
            if link is not None:
                await link.detach()
            app.exit()

    asyncio.run(run())
    print(json.dumps(seen))
    return 0


# ---------------------------------------------------------------------------- parent


def write_campaign(home: Path, experiments: int, trials: int, epochs: int) -> tuple[Path, int]:
    from tests.tui.stored_campaign import write_stored_campaign

    horizons = tuple(range(1, 1 + -(-experiments // len(BUDGETS))))
    stored = write_stored_campaign(
        home,
        name="bench",
        budgets=BUDGETS,
        horizons=horizons,
        trials=trials,
        epochs=epochs,
        prune_every=3,
        fail_every=17,
    )
    write_events(stored.campaign, home)
    return stored.config, stored.n_trials


def write_events(campaign: str, home: Path) -> None:
    """The events.jsonl an engine writes while it runs these trials (from the storage's
    own numbers): what a front-end attaching to a long campaign has behind it."""
    from engine import protocol as p
    from engine.storage.backend import default_storage_url, open_storage
    from engine.storage.queue import CampaignQueue
    from engine.storage.trial_records import campaign_trials

    storage = open_storage(default_storage_url(campaign), heartbeat_interval=None)
    queue = CampaignQueue(storage, campaign)
    snapshot = queue.snapshot(2)
    ts = time.time() - 86400.0
    lines: list[str] = []

    def put(event: p.Event) -> None:
        event.ts = ts
        lines.append(p.encode(event))

    put(
        p.Hello(
            protocol_version=p.PROTOCOL_VERSION,
            engine_version="bench",
            campaign=campaign,
            config_path="",
            storage="journal",
            pid=1,
            host="bench",
            workers=2,
        )
    )
    next_hw = ts
    for record in campaign_trials(queue):
        name = record.experiment
        put(p.ExperimentStarted(experiment=name))
        for t in record.trials:
            put(
                p.TrialStarted(
                    experiment=name,
                    trial=t.trial,
                    params=t.params,
                    architecture=t.architecture,
                    n_params=t.n_params,
                    worker=t.worker,
                    host=t.host,
                )
            )
            for epoch, train, val in t.curve:
                ts += 3.0
                put(
                    p.EpochEnded(
                        experiment=name,
                        trial=t.trial,
                        epoch=int(epoch or 0),
                        train_loss=train or 0.0,
                        val_loss=val or 0.0,
                        elapsed_s=3.0,
                    )
                )
            put(
                p.TrialFinished(
                    experiment=name,
                    trial=t.trial,
                    state=t.state,  # type: ignore[arg-type]
                    value=t.value,
                    duration_s=t.duration_s or 60.0,
                    worker=t.worker,
                    host=t.host,
                    architecture=t.architecture,
                    n_params=t.n_params,
                    metrics=t.metrics,
                    reason=t.reason,
                )
            )
            put(snapshot)
            put(p.LogLine(level="info", message=f"{name} trial {t.trial} {t.state}"))
            while next_hw < ts:
                next_hw += 30.0
                put(p.HardwareSampled(sample={"cpu_percent_per_core": [50.0, 60.0]}))
        put(p.ExperimentFinished(experiment=record.experiment, state="done"))
    path = home / "outputs" / campaign / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")


def time_child(mode: str, config: Path, expect: int, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--config",
            str(config),
            "--expect",
            str(expect),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{out.stderr[-3000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def set_last_state(campaign: str, state: str) -> None:
    from engine.storage.backend import default_storage_url, open_storage
    from engine.storage.queue import CampaignQueue

    storage = open_storage(default_storage_url(campaign), heartbeat_interval=None)
    queue = CampaignQueue(storage, campaign)
    queue.set_state(queue.entries(with_trials=False)[-1].name, state)


def start_engine(config: Path, home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    engine = subprocess.Popen(
        [sys.executable, "-m", "engine", "--config", str(config), "--no-monitor"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    sock = home / "outputs" / "bench" / "engine.sock"
    deadline = time.monotonic() + 600
    while not sock.exists():
        if engine.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the engine did not start (exit {engine.returncode})")
        time.sleep(0.2)
    return engine


def stop_engine(engine: subprocess.Popen[bytes]) -> None:
    if engine.poll() is None:
        engine.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            engine.wait(30)
    if engine.poll() is None:
        engine.kill()
        engine.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=12)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="workspace to write once and reuse")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of the code before (git worktree add DIR COMMIT): its dashboard "
        "timed the same way, after this tree's, for the ratios",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.config, args.expect)

    home = args.keep or Path(tempfile.mkdtemp(prefix="hpotui-first-frame-"))
    home = home.resolve()
    os.environ["HPOTUI_HOME"] = str(home)
    base_env = {**os.environ, "HPOTUI_HOME": str(home), "PYTHONPATH": str(ROOT)}
    marker = home / "bench.json"
    wanted = {"experiments": args.experiments, "trials": args.trials, "epochs": args.epochs}
    if marker.exists() and json.loads(marker.read_text()).get("wanted") == wanted:
        saved = json.loads(marker.read_text())
        config, n = Path(saved["config"]), int(saved["n"])
    else:
        shutil.rmtree(home / "outputs" / "bench", ignore_errors=True)
        t0 = time.monotonic()
        config, n = write_campaign(home, args.experiments, args.trials, args.epochs)
        marker.write_text(json.dumps({"wanted": wanted, "config": str(config), "n": n}))
        print(f"wrote the campaign in {time.monotonic() - t0:.1f} s")
    journal = home / "outputs" / "bench" / "optuna.journal"
    events = home / "outputs" / "bench" / "events.jsonl"
    print(
        f"campaign: {n} stored trials x {args.epochs} epochs; journal "
        f"{journal.stat().st_size / 2**20:.1f} MiB, events.jsonl {events.stat().st_size / 2**20:.1f} MiB"
    )
    from engine.storage.view_cache import forget

    folder = home / "outputs" / "bench"
    trees = [("this tree", str(ROOT))] + (
        [("baseline", str(args.baseline))] if args.baseline else []
    )
    figures: dict[tuple[str, str], list[dict[str, float]]] = {}
    loads = [os.getloadavg()[0]]
    for label, code in trees:  # this tree first: the baseline's engine writes to the journal
        env = {**base_env, CODE_ENV: code, "PYTHONPATH": code}
        for _ in range(args.runs):
            figures.setdefault((label, "floor"), []).append(time_child("floor", config, 0, env))
            forget(folder)  # no view kept: the journal replayed (it keeps one for the next)
            cold = time_child("finished", config, n, env)
            if label == "this tree":
                figures.setdefault((label, "finished (cold)"), []).append(cold)
            warm = time_child("finished", config, n, env)
            figures.setdefault((label, "finished"), []).append(warm)
        set_last_state("bench", "paused")
        engine = start_engine(config, home, base_env)  # this tree's engine, for both
        try:
            for _ in range(args.runs):
                figures.setdefault((label, "attached"), []).append(
                    time_child("attached", config, n, env)
                )
        finally:
            stop_engine(engine)
            set_last_state("bench", "done")
    loads.append(os.getloadavg()[0])
    print(
        f"machine load average {loads[0]:.1f} .. {loads[1]:.1f} on {os.cpu_count()} cores; "
        f"medians of {args.runs} runs, each a fresh process (wall s, its cpu s in brackets)"
    )
    ok = True
    for label, code in trees:
        print(f"{label} ({code}):")
        floor = statistics.median(r["frame"] for r in figures[(label, "floor")])
        floor_cpu = statistics.median(r["cpu"] for r in figures[(label, "floor")])
        for mode in ("floor", "finished", "finished (cold)", "attached"):
            results = figures.get((label, mode))
            if not results:
                continue
            median = statistics.median(r["frame"] for r in results)
            cpu = statistics.median(r["cpu"] for r in results)
            runs = ", ".join(f"{r['frame']:.2f}" for r in results)
            if mode == "floor":
                print(f"  floor (an empty app's first frame): {median:.2f} s ({cpu:.2f})  [{runs}]")
                continue
            if label == "this tree" and mode != "finished (cold)":
                ok = ok and median < TARGET_S
            verdict = "" if median < TARGET_S else "  ** over target **"
            used = any(r["engine"] for r in results) and mode.startswith("finished")
            note = "  (an engine was started)" if used else ""
            ratio = ""
            if label == "this tree" and (("baseline", mode.replace(" (cold)", ""))) in figures:
                base = statistics.median(
                    r["frame"] for r in figures[("baseline", mode.replace(" (cold)", ""))]
                )
                ratio = f", {base / median:.1f}x faster than the baseline"
            print(
                f"  {mode:<15} full history:  {median:.2f} s ({cpu:.2f})  [{runs}]  "
                f"{median / floor:.1f}x the floor, cpu {cpu / floor_cpu:.1f}x{ratio} "
                f"(target < {TARGET_S}){verdict}{note}"
            )
    if args.keep is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
