"""The supervisors' floor board: a web page per floor, live over Server-Sent Events.

`headset-fleet board --broker URL --login-file F [--bind 127.0.0.1] [--port 8080]` runs one
process that subscribes to every station (as a monitor user, `_monitor`), keeps the live
model of headset_fleet.monitor, evaluates the alert rules of headset_fleet.alerts and serves
the page (app.py). It is not public: a password login (the first line of --login-file, a
file only its owner may read) and, by default, a loopback-only bind; TLS goes in front, in a
reverse proxy (README). Needs the `board` extra (Starlette, uvicorn).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from firmware.errors import InputError
from firmware.protocol.login import read_password_file
from headset_fleet.alerts import AlertEngine, WebhookSender, load_rules
from headset_fleet.board.app import Board, create_app
from headset_fleet.board.auth import BoardAuth
from headset_fleet.connect import BrokerUrl
from headset_fleet.errors import FleetInputError
from headset_fleet.monitor import FleetFeed

log = logging.getLogger(__name__)

MIN_LOGIN_SECRET = 8
SEND_BUFFER = 64 * 1024


def load_login_secret(path: str) -> str:
    """The board's shared secret: the first line of a file only its owner may read, at least
    MIN_LOGIN_SECRET characters; FleetInputError (exit 2) naming the file otherwise."""
    try:
        secret = read_password_file(path, "--login-file")
    except InputError as exc:
        raise FleetInputError(str(exc)) from None
    if len(secret) < MIN_LOGIN_SECRET:
        raise FleetInputError(f"--login-file: {path}: the secret is shorter than {MIN_LOGIN_SECRET} characters")
    return secret


def build_board(
    broker: str | BrokerUrl,
    *,
    login_file: str,
    rules_file: str | None = None,
    lang: str = "en",
    tick_s: float = 0.25,
    report_html=None,
) -> Board:
    """The board, not yet connected (checks the login file and the rules first): its feed
    connects on the event loop that serves it (FleetFeed.start_async, in run_board)."""
    auth = BoardAuth(load_login_secret(login_file))
    rules = load_rules(rules_file)
    feed = FleetFeed(broker, client_id=f"hs-board-{os.getpid()}")
    webhook = None
    if rules.webhook_url:
        webhook = WebhookSender(
            rules.webhook_url,
            timeout_s=rules.webhook_timeout_s,
            backoff_max_s=rules.webhook_backoff_max_s,
            give_up_after_s=rules.webhook_give_up_after_s,
        )
    return Board(
        feed,
        AlertEngine(rules),
        auth,
        tick_s=tick_s,
        lang=lang,
        webhook=webhook,
        alert_topic=rules.mqtt_topic,
        report_html=report_html,
    )


def listen_socket(bind: str, port: int) -> socket.socket:
    """The board's listening socket. Connections inherit its small send buffer, so a browser
    that cannot keep up pushes back within ~SEND_BUFFER bytes and is then sent only the newest
    rows (app.SseClient), instead of seconds of stale updates queued in the kernel."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    try:
        sock.bind((bind, port))
    except OSError as exc:
        sock.close()
        raise FleetInputError(f"--bind/--port: cannot listen on {bind}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def run_board(
    broker: str | BrokerUrl,
    *,
    login_file: str,
    bind: str = "127.0.0.1",
    port: int = 8080,
    rules_file: str | None = None,
    lang: str = "en",
    report_html=None,
) -> int:
    import uvicorn  # the `board` extra

    if not 0 < port < 65536:
        raise FleetInputError(f"--port: {port} is not between 1 and 65535")
    board = build_board(broker, login_file=login_file, rules_file=rules_file, lang=lang, report_html=report_html)
    log.info("board: http://%s:%d/ (alert rules: %s)", bind, port, rules_file or "defaults")
    config = uvicorn.Config(
        create_app(board),
        host=bind,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
    sock = listen_socket(bind, port)

    async def serve() -> None:
        # One event loop reads the broker, renders the pushes and serves the browsers.
        try:
            await board.feed.start_async()
            await uvicorn.Server(config).serve(sockets=[sock])
        finally:
            board.close()

    try:
        asyncio.run(serve())
    finally:
        sock.close()
    return 0
