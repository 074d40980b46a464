"""One handler per protocol command. Each command gets exactly one `Reply` quoting its
id; a line that does not decode becomes an `ErrorRaised` event (never a crash); a
UserError from a handler becomes a failed Reply with its one-line message."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import protocol as p
from engine.errors import UserError
from engine.storage.trial_records import experiment_trials

if TYPE_CHECKING:
    from engine.process.channels import Client
    from engine.process.runner import Engine


class CommandHandler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.handlers: dict[type[p.Command], Callable[[Any], str]] = {
            p.Move: self.move,
            p.Pause: self.pause,
            p.Resume: self.resume,
            p.PauseAll: self.pause_all,
            p.ResumeAll: self.resume_all,
            p.Skip: self.skip,
            p.Rerun: self.rerun,
            p.AddExperiments: self.add,
            p.Stop: self.stop,
            p.SetWorkers: self.set_workers,
            p.RequestSnapshot: self.snapshot,
            p.ControlHost: self.control_host,
        }

    def handle_line(self, raw: bytes | str, source: Client | None) -> None:
        emit = self.engine.channels.emit
        try:
            command = p.decode_command(raw)
        except p.ProtocolError as exc:
            emit(p.ErrorRaised(message=f"bad command line: {exc}", command_id=_id_of(raw)))
            return
        try:
            message = self.handlers[type(command)](command)
            ok = True
        except UserError as exc:
            message, ok = str(exc), False
        except Exception as exc:  # a bug must not kill a running campaign
            traceback.print_exc()
            message, ok = f"{type(exc).__name__}: {exc}", False
        self.engine.apply_refresh()  # announces e.g. a skipped experiment before the Reply
        emit(p.Reply(command_id=command.id, ok=ok, message=message))
        self.engine.send_snapshot(force=ok)

    # ---------------------------------------------------------------- handlers

    def move(self, c: p.Move) -> str:
        self.engine.queue.move(c.experiment, to=c.to, by=c.by)
        return f"moved {c.experiment}"

    def pause(self, c: p.Pause) -> str:
        self.engine.queue.pause(c.experiment)
        return f"paused {c.experiment} (running trials finish)"

    def resume(self, c: p.Resume) -> str:
        self.engine.queue.resume(c.experiment)
        return f"resumed {c.experiment}"

    def pause_all(self, c: p.PauseAll) -> str:
        self.engine.queue.set_paused_all(True)
        return "paused all (running trials finish)"

    def resume_all(self, c: p.ResumeAll) -> str:
        self.engine.queue.set_paused_all(False)
        return "resumed all"

    def skip(self, c: p.Skip) -> str:
        self.engine.queue.skip(c.experiment)
        return f"skipped {c.experiment} (running trials finish)"

    def rerun(self, c: p.Rerun) -> str:
        engine = self.engine
        entry = engine.queue.entry(c.experiment)
        extremes = engine.plan.extremes.get(c.experiment)
        if extremes is None:
            from engine.campaign.plan import plan_experiment

            plan_experiment(entry.config, engine.plan)
            extremes = engine.plan.extremes[c.experiment]
        old = entry.study_name
        new = engine.queue.rerun(c.experiment, extremes)
        engine.started_experiments.discard(c.experiment)
        # the experiment's trials are now the fresh study's: front-ends drop the old ones
        engine.channels.emit(experiment_trials(new))
        return f"re-running {c.experiment} in study {new.study_name} ({old} archived)"

    def add(self, c: p.AddExperiments) -> str:
        from engine.campaign.config import load_experiments

        experiments = load_experiments(Path(c.config_path))
        added: list[str] = []
        updated: list[str] = []
        for exp in experiments:
            (added if self.engine.add_experiment(exp) else updated).append(exp.name)
        parts = []
        if added:
            parts.append("added " + ", ".join(added))
        if updated:
            parts.append("already queued: " + ", ".join(updated))
        return "; ".join(parts) or "no experiments in that config"

    def stop(self, c: p.Stop) -> str:
        if c.mode not in ("after_current", "now"):
            raise UserError(f"stop mode must be after_current or now, got {c.mode!r}")
        self.engine.stop(c.mode)
        return "stopping after the running trials" if c.mode == "after_current" else "stopping now"

    def set_workers(self, c: p.SetWorkers) -> str:
        if not isinstance(c.workers, int) or c.workers < 1:
            raise UserError(f"workers must be a whole number >= 1, got {c.workers!r}")
        engine = self.engine
        engine.n_workers = c.workers
        engine.queue.set_workers(c.workers)  # kept for the next start of the engine
        if engine.local is not None and not engine.stopping:
            engine.local.scale(c.workers)
        return f"{c.workers} worker(s)"

    def snapshot(self, c: p.RequestSnapshot) -> str:
        self.engine.send_snapshot(force=True)
        return "snapshot sent"

    def control_host(self, c: p.ControlHost) -> str:
        """Drain / stop / resume / workers of one machine (engine.fleet.engine_hosts)."""
        hosts = self.engine.hosts
        if hosts is None:
            raise UserError("the engine is still starting; try again in a moment")
        return hosts.command(c.host, c.action, c.workers)


def _id_of(raw: bytes | str) -> str | None:
    import json

    try:
        data = json.loads(raw)
    except (ValueError, TypeError):
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
