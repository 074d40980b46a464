"""`hpotui notify --test [CONFIG]`: send one test message to every notification URL of a
campaign (its `[notify] urls` plus `HPOTUI_NOTIFY_URLS`) and say which failed.

URLs are secrets: each is named by its position and scheme only ("URL 2 (tgram://***)").
Exit 0 when every URL took the message, 1 when one failed, 2 when none is configured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine import paths
from engine.errors import UserError

EXIT_OK, EXIT_FAILED = 0, 1


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "notify",
        help="send a test notification to every configured URL",
        description="Send one test message to every notification URL of a campaign "
        "([notify] urls in its config, plus HPOTUI_NOTIFY_URLS) and say which failed.",
    )
    parser.add_argument("config", nargs="?", help="campaign TOML (default: configs/demo.toml)")
    parser.add_argument("--test", action="store_true", help="send a test message (required)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.campaign.config import load_campaign
    from engine.notify.config import ENV_URLS, NotifySpec
    from engine.notify.sender import apprise_available, send_each
    from engine.storage.recovery import HOST

    if not args.test:
        raise UserError("say what to do: `hpotui notify --test [CONFIG]`", where="command line")
    config = Path(args.config) if args.config else paths.default_config()
    if args.config or config.is_file():
        campaign = load_campaign(config)
        name, spec = campaign.name, campaign.notify.with_env()
    else:  # no config at all: the environment's URLs alone
        name, spec = "(no config)", NotifySpec().with_env()
    if not spec.urls:
        raise UserError(
            "no notification URL configured",
            where=str(config),
            hint=f'add [notify] urls = ["ntfy://your-topic"] to the config or set {ENV_URLS}',
        )
    if not apprise_available():
        raise UserError(
            "notifications need apprise", hint="pip install 'hpotui[notify]'", exit_code=1
        )
    print(f"sending a test message to {len(spec.urls)} URL(s) of campaign {name}")
    title = f"hpotui {name}: test message"
    body = (
        f"campaign {name} on {HOST}\n"
        f"hpotui notify --test: this URL will be told of {', '.join(spec.on) or 'nothing'}"
    )
    outcomes = send_each(spec.urls, title, body)
    for outcome in outcomes:
        state = "sent" if outcome.error is None else f"FAILED: {outcome.error}"
        print(f"  {outcome.label}: {state}")
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        print(f"hpotui: {len(failed)} of {len(outcomes)} URL(s) failed", file=sys.stderr)
        return EXIT_FAILED
    print(f"ok: all {len(outcomes)} URL(s) took the message")
    return EXIT_OK
