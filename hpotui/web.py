"""The dashboard over HTTP: textual-serve's `Server`, made safe to leave running.

textual-serve runs one command per browser tab (here: the dashboard app, which attaches
to the campaign's engine as a second terminal would) and pipes it through a websocket.
This subclass adds what a campaign's control room needs:

- an access token (`token`): every request must carry it, as `?token=` once (answered
  with a redirect to the bare address and an HttpOnly, SameSite=Strict cookie, so the
  token leaves the address bar) or as that cookie; anything else gets 401. Tokens are
  compared in constant time and never logged: aiohttp's access log is off, and the
  start-up line prints `?token=<your token>`, not the token;
- page and websocket addresses built from the request's own host, so the page works
  through an SSH tunnel on another local port or from a phone on the LAN;
- one start-up line instead of textual-serve's banner.

Closing a tab ends that tab's app process only (textual-serve sends it "quit"); the
engine runs in its own session and keeps running, as with a closed terminal.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server, to_int

COOKIE = "hpotui_token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _digest(token: str) -> str:
    return hashlib.sha256(b"hpotui-serve:" + token.encode()).hexdigest()


class DashboardServer(Server):
    """textual-serve's server with a token, request-relative URLs and no access log."""

    def __init__(
        self, command: str, *, host: str, port: int, title: str, token: str | None
    ) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self._cookie = _digest(token) if token else None
        self._token = token
        self.banner = ""  # printed once the socket is bound

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        if self._token is not None:
            app.middlewares.append(self._check_token)
        return app

    @web.middleware
    async def _check_token(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        assert self._token is not None and self._cookie is not None
        given = request.query.get("token")
        if given is not None and hmac.compare_digest(given.encode(), self._token.encode()):
            query = {k: v for k, v in request.query.items() if k != "token"}
            response = web.HTTPFound(request.rel_url.with_query(query))
            response.set_cookie(
                COOKIE, self._cookie, httponly=True, samesite="Strict", secure=request.secure
            )
            raise response
        if not hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), self._cookie.encode()):
            return web.Response(
                status=401,
                text="hpotui serve: this dashboard needs its token: open the address "
                "with ?token=<your token> (the value of HPOTUI_SERVE_TOKEN on the server)\n",
            )
        return await handler(request)

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """textual-serve's page, with URLs from the request's host (tunnels, phones)."""
        router = request.app.router
        origin = f"{request.scheme}://{request.host}"
        static = f"{origin}{router['static'].url_for(filename='/')}".rstrip("/") + "/"
        socket_scheme = "wss" if request.scheme == "https" else "ws"
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{socket_scheme}://{request.host}{router['websocket'].url_for()}",
            "config": {"static": {"url": static}},
            "application": {"name": self.title},
        }

    async def on_startup(self, app: web.Application) -> None:
        if self.banner:
            self.console.print(self.banner, highlight=False, soft_wrap=True)

    def serve(self, debug: bool = False) -> None:
        """Serve until SIGINT/SIGTERM; textual-serve's `serve` without its access log."""
        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_exit)
        web.run_app(
            self._make_app(),
            host=self.host,
            port=self.port,
            handle_signals=False,
            loop=loop,
            access_log=None,
            print=lambda *args: None,
        )
