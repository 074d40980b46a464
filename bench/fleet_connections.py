"""Database connections of a small fleet, counted by PostgreSQL (pg_stat_activity).

    python bench/fleet_connections.py [--code DIR] [--seconds S] [--pool-size N]

Starts a throw-away PostgreSQL server (tests/fleet/pg_server.py), builds the TINY dataset,
and runs the fleet of the issue: an engine (`python -m engine`, 1 local worker) and two
`hpotui worker` nodes (1 worker each) on tests/fleet/fixtures/fleet_by_fit.toml. Every
0.5 s, once each machine has started a trial, it counts the server's client connections, in total and per `application_name`
(hpotui names each process's connections: engine.storage.pool). Prints the peak and the
mean while trials run.

`--code DIR` runs the fleet from another checkout (e.g. the main branch, whose processes
use SQLAlchemy's default pool): the baseline, measured in the same way on the same machine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# the tests' throw-away server and dataset, imported by name (test helpers, unchecked)
_helpers = importlib.import_module("tests.fleet.conftest")
running_server = importlib.import_module("tests.fleet.pg_server").running_server
FIXTURES, build_tiny = _helpers.FIXTURES, _helpers.build_tiny


def count(url: str) -> Counter[str]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as c:
        rows = c.execute(
            sqlalchemy.text(
                "SELECT application_name, count(*) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
                "GROUP BY application_name"
            )
        ).all()
    engine.dispose()
    return Counter({(name or "(unnamed)"): int(n) for name, n in rows})


def wait_for_hosts(url: str, hosts: set[str], timeout: float) -> None:
    """Until a trial of each host has started (every process is connected and working)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline and not hosts <= seen:
        time.sleep(2)
        try:
            with engine.connect() as c:
                rows = c.execute(
                    sqlalchemy.text(
                        "SELECT DISTINCT value_json FROM trial_user_attributes "
                        "WHERE key = 'hpotui.host'"
                    )
                ).all()
        except sqlalchemy.exc.ProgrammingError:  # no tables yet: the engine is starting
            continue
        seen = {str(r[0]).strip('"') for r in rows}
    engine.dispose()
    if not hosts <= seen:
        raise SystemExit(f"only {sorted(seen)} started trials in {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", default=str(ROOT), help="checkout the fleet runs from")
    parser.add_argument("--seconds", type=float, default=60.0, help="sampling, once all work")
    parser.add_argument("--pool-size", type=int, help="$HPOTUI_POOL_SIZE for every process")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hpotui-conn-"))
    (home / "outputs").mkdir()
    build_tiny(home)
    config = home / "fleet.toml"
    config.write_text(
        (FIXTURES / "fleet_by_fit.toml").read_text().replace("n_trials = 16", "n_trials = 400")
    )
    env = {**os.environ, "HPOTUI_HOME": str(home), "PYTHONPATH": args.code}
    if args.pool_size:
        env["HPOTUI_POOL_SIZE"] = str(args.pool_size)
    processes: list[subprocess.Popen[bytes]] = []
    with running_server() as url:
        try:
            first = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "engine",
                    "--config",
                    str(config),
                    "--storage",
                    url,
                    "--workers",
                    "1",
                    "--no-monitor",
                ],
                cwd=home,
                env={**env, "HPOTUI_HOST": "engine-host"},
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(first)
            time.sleep(20)  # the engine creates the campaign before the nodes join
            for host in ("node-1", "node-2"):
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "hpotui.cli",
                            "worker",
                            "--campaign",
                            "fleet",
                            "--workers",
                            "1",
                            "--threads",
                            "1",
                            "--no-monitor",
                        ],
                        cwd=home,
                        env={**env, "HPOTUI_HOST": host, "HPOTUI_STORAGE": url},
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            wait_for_hosts(url, {"engine-host", "node-1", "node-2"}, timeout=900)
            peak: Counter[str] = Counter()
            totals: list[int] = []
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                now = count(url)
                totals.append(sum(now.values()))
                for name, n in now.items():
                    peak[name] = max(peak[name], n)
                time.sleep(0.5)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
    shutil.rmtree(home, ignore_errors=True)
    print(f"code: {args.code}  pool size: {args.pool_size or 'default'}")
    print(f"server connections: peak {max(totals)}, mean {sum(totals) / len(totals):.1f}")
    for name, n in sorted(peak.items()):
        print(f"  peak {n:>2}  {name}")


if __name__ == "__main__":
    main()
