"""`hpotui hosts [drain|stop|resume|workers HOST [N]]`: every machine of a campaign,
and remote control of one, through the shared storage (docs/distributed.md).

Without an action: one row per machine (`--json`: the host views, as `HostsChanged`
events carry them). With one, the command is recorded in the storage with who gave it
and when; the machine obeys within about a second (drain: after its running trials;
stop: at their next epoch boundary). Exit 0, or 2 on bad input (unknown host or campaign).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.errors import UserError

ACTIONS = ("list", "drain", "stop", "resume", "workers")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "hosts",
        help="every machine of a campaign; drain, stop, resume one, or set its workers",
        description="List the machines working on a campaign kept in a shared storage, "
        "or give one of them a command: drain (finish running trials, take no more), "
        "stop (interrupt them now; they are re-run elsewhere), resume, workers N.",
    )
    parser.add_argument("action", nargs="?", default="list", choices=ACTIONS)
    parser.add_argument("host", nargs="?", help="the machine (as listed)")
    parser.add_argument("workers", nargs="?", type=int, help="with `workers`: how many")
    parser.add_argument("--storage", help="storage URL (default: $HPOTUI_STORAGE)")
    parser.add_argument("--campaign", help="campaign name (default: the only one)")
    parser.add_argument("--pool-size", type=int, help="database connections at most")
    parser.add_argument("--json", action="store_true", help="print the hosts as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.fleet.host_records import host_views, send_command
    from engine.fleet.setup import campaigns_in
    from engine.storage.backend import check_storage, mask_url, open_storage
    from engine.storage.pool import set_pool_size
    from engine.storage.queue import CampaignQueue
    from hpotui.commands.worker import _only_campaign, _storage_url
    from hpotui.host_rows import text_table

    args.config = None  # _storage_url reads a config's storage when given one
    url = _storage_url(args)
    problem = check_storage(url)
    if problem:
        raise UserError(problem, where="--storage")
    set_pool_size(args.pool_size)
    storage = open_storage(url, heartbeat_interval=None)
    name = args.campaign or _only_campaign(campaigns_in(storage), mask_url(url))
    if name not in campaigns_in(storage):
        raise UserError(f"no campaign {name!r} in storage {mask_url(url)}", where="--campaign")
    queue = CampaignQueue(storage, name)
    if args.action != "list":
        if not args.host:
            raise UserError(f"`hosts {args.action}` needs the HOST it is for", where="HOST")
        if args.action != "workers" and args.workers is not None:
            raise UserError(f"`hosts {args.action}` takes no number", where="N")
        command = send_command(storage, queue, args.host, args.action, args.workers)
        print(f"{args.host}: {command.describe()}; it obeys within a few seconds")
        return 0
    views = host_views(storage, queue)
    if args.json:
        print(json.dumps({"campaign": name, "hosts": views}, indent=2))
    elif not views:
        print(f"campaign {name}: no machine has published a host record yet")
    else:
        print(text_table(views))
    return 0
