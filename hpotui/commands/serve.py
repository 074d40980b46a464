"""`hpotui serve [CONFIG]`: the dashboard in a browser (textual-serve, `hpotui[serve]`).

Each browser tab runs its own dashboard process (`python -m hpotui.commands.serve --tab`),
which attaches to the campaign's running engine, or starts it, exactly like a second
`hpotui CONFIG` in a terminal; closing the tab never stops the campaign.

Binds 127.0.0.1 by default. Any other address serves pause/skip/stop keys to whoever
reaches it, so it needs a token (`--token` or, better, `HPOTUI_SERVE_TOKEN`, which `ps`
does not show) and is refused without one; the SSH tunnel is the alternative:
    ssh -N -L 8000:127.0.0.1:8000 you@campaign-host     then open http://127.0.0.1:8000/
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from engine import paths
from engine.errors import UserError

TOKEN_ENV = "HPOTUI_SERVE_TOKEN"
MIN_TOKEN = 16


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="the dashboard in a browser (each tab attaches to the campaign's engine)",
        description="Serve the dashboard over HTTP with textual-serve. Each browser tab "
        "attaches to the campaign's engine (starting it if needed); closing a tab never "
        f"stops the campaign. Any address but loopback needs --token or ${TOKEN_ENV}.",
    )
    parser.add_argument("config", nargs="?", help="campaign TOML (default: configs/demo.toml)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--token", help=f"access token (prefer ${TOKEN_ENV}: ps shows arguments)")
    parser.add_argument("--storage", help="Optuna storage URL (default: journal file in outputs/)")
    parser.add_argument("--workers", help='number of local workers or "auto"')
    parser.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, given: str | None, port: int) -> str | None:
    """The token to require (None on loopback without one); UserError when an exposed
    address has none or a short one."""
    token = given or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise UserError(
            f"serving on {host} lets anyone who reaches this machine pause or stop the "
            f"campaign: set {TOKEN_ENV} (or --token), or keep 127.0.0.1 and use an SSH "
            f"tunnel: ssh -N -L {port}:127.0.0.1:{port} you@this-host, then open "
            f"http://127.0.0.1:{port}/"
        )
    if token is not None and len(token) < MIN_TOKEN:
        raise UserError(  # the CLI prefixes "hpotui: "; `where` names the setting
            f"the token is too short (at least {MIN_TOKEN} characters)",
            where="--token" if given else f"${TOKEN_ENV}",
            hint='make one with: python3 -c "import secrets; print(secrets.token_urlsafe(24))"',
        )
    return token


def addresses(host: str, port: int) -> list[str]:
    """The addresses a browser opens: `host` itself, or, bound to every interface
    (0.0.0.0, ::), this machine's name and its addresses on its networks (an address
    of 0.0.0.0 opens nothing)."""
    if host not in ("0.0.0.0", "::", ""):
        return [_url(host, port)]
    import socket

    import psutil

    names = [socket.gethostname()]
    fqdn = socket.getfqdn()
    if fqdn not in names and "." in fqdn and not fqdn.startswith("localhost"):
        names.append(fqdn)
    families = (socket.AF_INET,) if host == "0.0.0.0" else (socket.AF_INET, socket.AF_INET6)
    for nic in psutil.net_if_addrs().values():
        for address in nic:
            ip = address.address.split("%")[0]
            wanted = address.family in families and not is_loopback(ip) and ip not in names
            if wanted and not ipaddress.ip_address(ip).is_link_local:
                names.append(ip)
    return [_url(name, port) for name in names]


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def tab_command(config: Path, storage: str | None, workers: str | None) -> str:
    """The shell command textual-serve runs for each browser tab."""
    argv = [sys.executable, "-m", "hpotui.commands.serve", "--tab", str(config)]
    if storage:
        argv += ["--storage", storage]
    if workers:
        argv += ["--workers", str(workers)]
    return shlex.join(argv)


def run(args: argparse.Namespace) -> int:
    from engine.campaign.config import load_campaign

    config = (Path(args.config) if args.config else paths.default_config()).resolve()
    campaign = load_campaign(config)  # a bad config is reported here, not in every tab
    token = resolve_token(args.host, args.token, args.port)
    os.environ.pop(TOKEN_ENV, None)  # tabs and the engine they start never see it
    try:
        from hpotui.web import DashboardServer
    except ImportError:
        raise UserError(
            "hpotui serve needs textual-serve", hint="pip install 'hpotui[serve]'"
        ) from None
    server = DashboardServer(
        tab_command(config, args.storage, args.workers),
        host=args.host,
        port=args.port,
        title=f"hpotui {campaign.name}",
        token=token,
    )
    query = "?token=<your token>" if token else ""
    first, *others = addresses(args.host, args.port)
    also = f"; also {', '.join(others)}" if others else ""
    server.banner = (
        f"hpotui serve: campaign {campaign.name} at {first}{query}{also} "
        "(Ctrl+C stops serving, never the campaign)"
    )
    try:
        server.serve()
    except OSError as error:  # the port is taken, the address is not this machine's
        raise UserError(f"cannot serve on {args.host}:{args.port}: {error.strerror}") from None
    return 0


def tab_main(argv: list[str]) -> int:
    """One browser tab: the dashboard app, over textual-serve's web driver."""
    from hpotui.app import create_app

    parser = argparse.ArgumentParser(prog="hpotui serve --tab")
    parser.add_argument("--tab", required=True, help="campaign TOML")
    parser.add_argument("--storage")
    parser.add_argument("--workers")
    args = parser.parse_args(argv)
    app = create_app(Path(args.tab), storage=args.storage, workers=args.workers)
    app.run()  # stdout is the web driver's channel: print nothing after it
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(tab_main(sys.argv[1:]))
