"""The floor board's web app (Starlette, served by uvicorn) and its push loop.

One process, one event loop: `FleetFeed` (paho, subscribed as `_monitor`, its socket read
on the loop) folds every station message into the live model; every `tick_s` the `Board` takes the stations that
changed, renders their rows once, evaluates the alert rules, delivers new alerts (webhook,
MQTT fleet topic) and hands one encoded Server-Sent Events message to every connected
browser; a browser that falls behind gets the newest version of the rows changed meanwhile
instead of a growing backlog (SseClient). Pages and the event stream need the signed
session cookie (auth.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from datetime import date
from html import escape
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from firmware.errors import StationError
from headset_fleet.alerts import AlertEngine, WebhookSender
from headset_fleet.board.auth import COOKIE, BoardAuth
from headset_fleet.board.render import (
    SORTS,
    render_alerts,
    render_login,
    render_page,
    render_row,
    render_summary,
    row_parts,
)
from headset_fleet.errors import FleetError
from headset_fleet.monitor import FleetFeed

log = logging.getLogger(__name__)

CLIENT_BACKLOG = 4  # ticks a browser may fall behind before it is sent only the newest rows
KEEPALIVE_S = 15.0
LOGIN_BODY_MAX = 4096
FAILED_LOGIN_DELAY_S = 1.0


class SseClient:
    """One connected browser and what it has not been sent yet.

    Normally that is the shared per-tick messages (encoded once for every browser). A browser
    that falls more than `CLIENT_BACKLOG` ticks behind switches to latest-value mode: the
    desks changed since, each sent once in its newest version when its connection takes more,
    never a growing queue of stale versions."""

    def __init__(self):
        self.pending: list[tuple[bytes, tuple]] = []  # (shared message, its row keys)
        self.lagging: set | None = None  # row keys owed in latest-value mode
        self.snapshot = True  # the first write is everything
        self.wake = asyncio.Event()
        self.wake.set()

    def offer(self, message: bytes, keys: tuple) -> None:
        if self.lagging is None and len(self.pending) < CLIENT_BACKLOG:
            self.pending.append((message, keys))
        else:
            if self.lagging is None:
                self.lagging = set()
                for _message, old_keys in self.pending:
                    self.lagging.update(old_keys)
                self.pending = []
            self.lagging.update(keys)
        self.wake.set()

    def take(self) -> tuple[bool, list[bytes], set | None]:
        taken = (self.snapshot, [m for m, _k in self.pending], self.lagging)
        self.snapshot, self.pending, self.lagging = False, [], None
        self.wake.clear()
        return taken


def sse(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


def row_change(old: tuple | None, new: tuple) -> tuple:
    """What the page needs to turn row `old` into `new` (render.row_parts): the whole row if
    it is new, else (key, class, the attributes that differ plus `ev`, {cell index: cell} of the
    cells that differ)."""
    if old is None:
        return new
    key, cls, attrs, cells = new
    _k, _cls, old_attrs, old_cells = old
    changed = {k: v for k, v in attrs.items() if k == "ev" or old_attrs.get(k) != v}
    return (
        key,
        cls,
        changed,
        {str(i): c for i, (c, o) in enumerate(zip(cells, old_cells, strict=True)) if _differs(c, o)},
    )


def _differs(cell: tuple, old: tuple) -> bool:
    """A running timer's text is the page's own (it ticks from data-since): the same class and
    start is the same cell, whatever duration the server rendered."""
    if cell[1] and cell[1] == old[1]:
        return cell[0] != old[0]
    return cell != old


def _visible(parts: tuple) -> tuple:
    """A row without its `ev` attribute (the last event's time, for latency measurements)."""
    _key, cls, attrs, cells = parts
    return cls, {k: v for k, v in attrs.items() if k != "ev"}, cells


class Board:
    """The push loop and the state the pages are rendered from."""

    def __init__(
        self,
        feed: FleetFeed,
        engine: AlertEngine,
        auth: BoardAuth,
        *,
        tick_s: float = 0.25,
        lang: str = "en",
        webhook: WebhookSender | None = None,
        alert_topic: str = "",
        report_html=None,
    ):
        self.feed = feed
        self.engine = engine
        self.rules = engine.rules
        self.auth = auth
        self.tick_s = tick_s
        self.lang = lang
        self.webhook = webhook
        self.alert_topic = alert_topic
        self.report_html = report_html  # callable(day: date, tz: str | None) -> str, or None
        self.clients: set[SseClient] = set()
        self._rendered: dict[tuple, tuple] = {}  # station key -> its row's parts (render.row_parts)
        self._changes: dict[tuple, tuple] = {}  # this tick's pushed rows: only what differs (row_change)
        self._summary_html = ""
        self._alerts_html = ""
        self.alerts_sent = 0
        self.push_lag_s: deque = deque(maxlen=240)  # (tick, median, max) of event ts -> push, per tick

    # --- the push loop (runs on the event loop) ---------------------------------------------
    def step(self, now_s: float) -> tuple[tuple, bool, bool]:
        """Render what changed, evaluate alerts, deliver them: (changed row keys, summary
        changed, alerts changed). A row whose HTML did not change (only `data-ev`) is not pushed.
        The tick's message carries only the cells and attributes that changed (row_change):
        every browser that gets it has the previous version (a snapshot, the newest rows after
        falling behind, or every tick's message since)."""
        keys = []
        self._changes = {}
        rows = self.feed.changed(now_s)
        lags = [now_s - r["last_event_ts_s"] for r in rows if r["last_event_ts_s"] is not None]
        if lags:
            lags.sort()
            self.push_lag_s.append((now_s, lags[len(lags) // 2], lags[-1]))
        for r in rows:
            key = (r["site"], r["station"])
            parts = row_parts(r, self.rules.hold_warn_s, self.rules.hold_limit_s)
            old = self._rendered.get(key)
            self._rendered[key] = parts
            if old is None or _visible(old) != _visible(parts):
                keys.append(key)
                self._changes[key] = row_change(old, parts)
        summary = render_summary(self.feed.summary(self.rules.hold_limit_s, now_s))
        summary_changed = summary != self._summary_html
        self._summary_html = summary
        alerts = self.feed.snapshot(lambda fleet: self.engine.evaluate(fleet, now_s))
        if alerts:
            self._deliver(alerts)
            self._alerts_html = render_alerts(self.engine.active_alerts())
        return tuple(keys), summary_changed, bool(alerts)

    def _deliver(self, alerts: list[dict]) -> None:
        for alert in alerts:
            self.alerts_sent += 1
            log.warning(
                "alert %s %s: %s/%s %s", alert["state"], alert["rule"], alert["site"], alert["name"], alert["detail"]
            )
            if self.webhook is not None:
                self.webhook.send(alert)
            if self.alert_topic:
                try:
                    self.feed.publish(self.alert_topic, json.dumps(alert, ensure_ascii=False).encode())
                except (RuntimeError, ValueError) as exc:  # paho: not connected / queue full
                    log.warning("alert: MQTT publish on %s failed: %s", self.alert_topic, exc)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                now_s = time.time()
                keys, summary, alerts = self.step(now_s)
            except Exception:  # the push loop must outlive any one bad step
                log.exception("board: push step failed")
                continue
            if keys or summary or alerts:
                message = self.message(now_s, False, keys, summary, alerts, self._changes)
                for client in list(self.clients):
                    client.offer(message, keys)

    def message(self, now_s: float, snapshot: bool, keys, summary: bool, alerts: bool, changes=None) -> bytes:
        """An SSE message: everything (snapshot), or the given rows (whole, or as `changes`) and panels."""
        parts = [sse("now", f"{now_s:.3f}")]
        if snapshot:
            parts += [sse("reset", ""), sse("rows", json.dumps(list(self._rendered.values()), separators=(",", ":")))]
        elif keys:
            rows = [self._rendered[k] for k in keys if k in self._rendered]
            if changes:
                rows = [changes.get(k) or self._rendered[k] for k in keys if k in self._rendered]
            parts.append(sse("rows", json.dumps(rows, separators=(",", ":"))))
        if snapshot or summary:
            parts.append(sse("summary", self._summary_html))
        if snapshot or alerts:
            parts.append(sse("alerts", self._alerts_html))
        return "".join(parts).encode()

    def close(self) -> None:
        """Stop the webhook sender and the broker connection."""
        if self.webhook is not None:
            self.webhook.stop()
        self.feed.stop()

    # --- HTTP ------------------------------------------------------------------------------
    def logged_in(self, request: Request) -> bool:
        return self.auth.valid(request.cookies.get(COOKIE))

    async def page(self, request: Request) -> Response:
        if not self.logged_in(request):
            return RedirectResponse("login", status_code=303)
        q = request.query_params
        sort = q.get("sort") or "desk"
        sort = sort if sort in SORTS else "desk"
        site = q.get("site", "")
        lang = q.get("lang") or self.lang
        lang = lang if lang in ("en", "zh") else self.lang
        now_s = time.time()
        rows = self.feed.rows(sort, now_s)
        sites = sorted({r["site"] for r in rows})
        rows_html = "".join(render_row(row_parts(r, self.rules.hold_warn_s, self.rules.hold_limit_s)) for r in rows)
        summary = render_summary(self.feed.summary(self.rules.hold_limit_s, now_s))
        html = render_page(
            rows_html=rows_html,
            summary_html=summary,
            alerts_html=render_alerts(self.engine.active_alerts()),
            sites=sites,
            site=site,
            sort=sort,
            lang=lang,
            warn_s=self.rules.hold_warn_s,
            limit_s=self.rules.hold_limit_s,
            sound=self.rules.sound,
            now_s=now_s,
            report_link=self.report_html is not None,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def events(self, request: Request) -> Response:
        if not self.logged_in(request):
            return Response("log in first\n", status_code=401)
        client = SseClient()
        self.clients.add(client)

        async def stream():
            try:
                while True:
                    try:
                        await asyncio.wait_for(client.wake.wait(), KEEPALIVE_S)
                    except TimeoutError:
                        yield b": keep-alive\n\n"  # finds dead connections; keeps proxies from timing out
                        continue
                    snapshot, messages, lagging = client.take()
                    if snapshot:
                        yield self.message(time.time(), True, (), True, True)
                    elif lagging is not None:  # fell behind: the newest version of what changed
                        yield self.message(time.time(), False, lagging, True, True)
                    else:
                        yield b"".join(messages)
            finally:
                self.clients.discard(client)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    async def session(self, request: Request) -> Response:
        return Response(status_code=204 if self.logged_in(request) else 401)

    async def login_form(self, request: Request) -> Response:
        return HTMLResponse(render_login())

    async def login(self, request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > LOGIN_BODY_MAX:
                return HTMLResponse(render_login("request too large"), status_code=413)
        password = (parse_qs(body.decode("utf-8", "replace")).get("password") or [""])[0]
        if not self.auth.check_password(password):
            await asyncio.sleep(FAILED_LOGIN_DELAY_S)  # slows guessing; the compare is constant-time
            log.warning("board: failed login from %s", request.client.host if request.client else "?")
            return HTMLResponse(render_login("wrong password"), status_code=401)
        response = RedirectResponse("./", status_code=303)
        response.set_cookie(
            COOKIE,
            self.auth.issue(),
            max_age=int(self.auth.session_s),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def api_state(self, request: Request) -> Response:
        if not self.logged_in(request):
            return JSONResponse({"error": "log in first"}, status_code=401)
        now_s = time.time()
        return JSONResponse(
            {
                "now_s": now_s,
                "stations": self.feed.rows("site", now_s),
                "sites": self.feed.summary(self.rules.hold_limit_s, now_s),
                "alerts": self.engine.active_alerts(),
                "clients": len(self.clients),
                "push_lag_s": list(self.push_lag_s),
                "messages": self.feed.messages,
            }
        )

    async def report(self, request: Request) -> Response:
        if not self.logged_in(request):
            return RedirectResponse("login", status_code=303)
        if self.report_html is None:
            return HTMLResponse(
                "<!doctype html><title>report</title><p>The daily report is not available "
                "on this board (start it with --db).</p>",
                status_code=404,
            )
        text = request.query_params.get("day") or date.today().isoformat()
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return HTMLResponse("<p>day: not YYYY-MM-DD</p>", status_code=400)
        try:
            html = await asyncio.to_thread(self.report_html, day, request.query_params.get("tz") or None)
        except (FleetError, StationError) as exc:  # a bad --tz, an unreachable store: one line
            return HTMLResponse(f"<p>{escape(str(exc))}</p>", status_code=400)
        return HTMLResponse(html)


def create_app(board: Board) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(board.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    routes = [
        Route("/", board.page),
        Route("/events", board.events),
        Route("/session", board.session),
        Route("/login", board.login_form, methods=["GET"]),
        Route("/login", board.login, methods=["POST"]),
        Route("/logout", board.logout, methods=["POST"]),
        Route("/api/state", board.api_state),
        Route("/report", board.report),
        Mount("/static", app=StaticFiles(packages=[("headset_fleet.board", "static")]), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
