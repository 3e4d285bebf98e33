"""The live fleet model shared by the terminal monitor and the floor board, and the monitor itself.

`fold_message(fleet, topic, payload, now_s, retained)` folds one MQTT message (retained
`status`/`state`, then live `event` and `telemetry`) into a dict of `StationView`s;
`table_rows(fleet, now_s, sort_key)` turns it into plain dicts and `site_summary(views, now_s)` adds
one line per site. The terminal view (`run_live`, a rich Live table), `run_json` and the
board (headset_fleet.board) only feed and read it.

What the model promises a supervisor:
- A station whose Last Will (or clean `offline` status) arrived is `offline since` that
  moment; its last known call, hold and cue are kept for display but are never live: no
  running call or hold timer. A viewer started later reads the retained will (the moment is
  then unknown: `since_exact` is false) and shows no ghost, whatever order the retained
  `status` and `state` arrive in.
- A new birth (`online` with another `bdSeq`/`boot_id`) resolves it: the old call and hold
  are dropped until the station's own `state` and events say otherwise. Events stamped
  before the birth (the outbox backlog of an outage) count for the record, not for the live
  view. A stale Last Will (another `bdSeq`/`boot_id` than the latest birth) is ignored, as
  firmware/protocol/topics.py asks.
- Timers come from the station's own timestamps: `hold.start`/`call.start` event `ts`, the
  state's `call_started`, or the state's `ts` minus its `hold_s`/`call_s`; a state without
  `ts` is dated on receipt (the station republishes it every 0.5 s while a hold runs).
- Names: `desk` and `agent` from the birth record, the state or an event, else the id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import select
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import paho.mqtt.client as mqtt

from firmware.protocol import login
from firmware.protocol.topics import ALL_EVENTS, ALL_STATUS, ROOT, parse
from headset_fleet.connect import BrokerUrl, connect_blocking, parse_broker_url
from headset_fleet.cue_words import cue_words
from headset_fleet.errors import FleetBrokerError, FleetInputError

log = logging.getLogger(__name__)

SUBSCRIPTIONS = (ALL_STATUS, f"{ROOT}/+/+/state", ALL_EVENTS, f"{ROOT}/+/+/telemetry")
SORT_KEYS = ("station", "desk", "site", "status", "hold", "call", "faults", "outbox", "last_seen")
HOLD_WARN_S = 45.0
HOLD_LIMIT_S = 60.0
DEAD_AIR_CUES = frozenset({"say_wait", "say_busy"})
VIOLATION_MEMORY_S = 3600.0  # rule.violation timestamps kept per station for rate alerts
BACKLOG_SLACK_S = 1.0  # an event this much older than the birth is the outbox's backlog
READ_BURST = 256  # packets read per wake-up of the event loop while the socket has more
RECONNECT_MAX_S = 30.0  # the longest pause between reconnect attempts (asyncio mode)


@dataclass
class StationView:
    site: str
    station: str
    desk: str = ""
    agent: str = ""
    status: str = "unknown"
    status_since_s: float | None = None  # when it went online/offline (None: not known)
    since_exact: bool = False  # False: a retained record, the moment is not known exactly
    bd_seq: tuple | None = None  # (bdSeq, boot_id) of the latest birth
    session_start_s: float | None = None  # the latest birth's `ts` (station clock)
    call: str | None = None
    call_since_s: float | None = None  # None on a call: the start is not known (yet)
    phase: str = ""
    hold_since_s: float | None = None  # None = not on hold
    dead_air_since_s: float | None = None  # since the station cued "say_wait"/"say_busy"
    cue: str = ""
    line: dict = field(default_factory=dict)
    faults: dict = field(default_factory=dict)
    outbox_depth: int | None = None
    last_seen_s: float = 0.0
    last_event: str = ""
    last_event_ts_s: float | None = None
    violations: deque = field(default_factory=deque)  # ts of recent rule.violation events
    dropped_call: tuple | None = None  # (call, call_since_s) cleared by a loss: a reconnect may resume it

    @property
    def online(self) -> bool:
        return self.status != "offline"

    @property
    def name(self) -> str:
        return self.desk or self.station

    def hold_s(self, now_s: float) -> float:
        if not self.online or self.hold_since_s is None:
            return 0.0
        return max(0.0, now_s - self.hold_since_s)

    def call_s(self, now_s: float) -> float | None:
        if not self.online or self.call is None or self.call_since_s is None:
            return None
        return max(0.0, now_s - self.call_since_s)

    def dead_air_s(self, now_s: float) -> float:
        if not self.online or self.call is None or self.dead_air_since_s is None:
            return 0.0
        return max(0.0, now_s - self.dead_air_since_s)

    def violations_since(self, since_s: float) -> int:
        return sum(1 for ts in self.violations if ts >= since_s)

    def as_dict(self, now_s: float) -> dict:
        live = self.online
        call_s = self.call_s(now_s)
        return {
            "site": self.site,
            "station": self.station,
            "desk": self.desk,
            "agent": self.agent,
            "name": self.name,
            "status": self.status,
            "online": live,
            "status_since_s": self.status_since_s,
            "since_exact": self.since_exact,
            "on_call": live and self.call is not None,
            "call": self.call,
            "call_s": None if call_s is None else round(call_s, 1),
            "call_since_s": self.call_since_s if live and self.call is not None else None,
            "phase": self.phase,
            "on_hold": live and self.hold_since_s is not None,
            "hold_s": round(self.hold_s(now_s), 1),
            "hold_since_s": self.hold_since_s if live else None,
            "dead_air": live and self.call is not None and self.dead_air_since_s is not None,
            "dead_air_s": round(self.dead_air_s(now_s), 1),
            # the last known state of an offline station, shown greyed, never as live
            "was_on_call": not live and self.call is not None,
            "was_on_hold": not live and self.hold_since_s is not None,
            "cue": self.cue,
            "cue_en": cue_words(self.cue, "en"),
            "cue_zh": cue_words(self.cue, "zh"),
            "line": dict(self.line),
            "faults": dict(self.faults),
            "outbox_depth": self.outbox_depth,
            "last_event": self.last_event,
            "last_event_ts_s": self.last_event_ts_s,
            "last_seen_s": round(self.last_seen_s, 3),
        }


def epoch(ts) -> float | None:
    """Epoch seconds of an ISO 8601 time stamp; None if it is not one (or not finite)."""
    if not isinstance(ts, str):
        return None
    try:
        value = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _num(value) -> float | None:
    """A finite non-negative number from a payload, else None (NaN, inf, bool, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0.0 <= value < 1e9 else None


def _text(value, limit: int = 80) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _decode(payload: bytes):
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return payload.decode("utf-8", "replace").strip()


def fold_message(fleet: dict, topic: str, payload: bytes, now_s: float, retained: bool = False):
    """Fold one message into `fleet` ({(site, station): StationView}); return the key it
    changed, or None if the message is not a station's (or clears a retained topic)."""
    parsed = parse(topic)
    if parsed is None or not payload:
        return None  # an empty retained payload clears a topic; nothing to show
    site, station, kind = parsed
    if kind not in ("status", "state", "event", "telemetry"):
        return None
    key = (site, station)
    view = fleet.get(key)
    if view is None:
        view = fleet[key] = StationView(site, station)
    view.last_seen_s = now_s
    data = _decode(payload)
    if kind == "status":
        _fold_status(view, data, now_s, retained)
    elif kind == "state" and isinstance(data, dict):
        _fold_state(view, data, now_s)
    elif kind == "event" and isinstance(data, dict):
        _fold_event(view, data, now_s)
    elif kind == "telemetry" and isinstance(data, dict):
        depth = data.get("outbox_depth", data.get("outbox"))
        if isinstance(depth, dict):
            depth = depth.get("depth", depth.get("pending"))
        if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 0:
            view.outbox_depth = depth
    return key


def fold(fleet: dict, topic: str, payload: bytes, now_s: float, retained: bool = False) -> dict:
    """`fold_message` returning `fleet` (for folding a list of messages in one expression)."""
    fold_message(fleet, topic, payload, now_s, retained)
    return fleet


def _names(view: StationView, data: dict) -> None:
    for attr in ("desk", "agent"):
        if attr in data and (data[attr] is None or isinstance(data[attr], str)):
            setattr(view, attr, _text(data[attr]))


def _clear_call(view: StationView) -> None:
    if view.call is not None:
        view.dropped_call = (view.call, view.call_since_s)
    view.call, view.call_since_s, view.hold_since_s, view.dead_air_since_s, view.phase = None, None, None, None, ""


def _fold_status(view: StationView, data, now_s: float, retained: bool) -> None:
    record = data if isinstance(data, dict) else {}
    status = record.get("status") if record else data
    if not isinstance(status, str) or status not in ("online", "offline"):
        return
    session = (record.get("bdSeq"), record.get("boot_id")) if record else None
    ts_s = epoch(record.get("ts"))
    if status == "offline":
        if session and view.bd_seq is not None and session != view.bd_seq:
            return  # the will of an older connection (another bdSeq or another boot)
        if view.status != "offline":
            if not retained:
                view.status_since_s, view.since_exact = now_s, True
            elif record.get("reason") != "will" and ts_s is not None:
                view.status_since_s, view.since_exact = ts_s, True  # a clean stop dates itself
            else:  # a retained will carries its connection's time, not its death's
                view.status_since_s, view.since_exact = now_s, False
        view.status = "offline"
        view.dead_air_since_s = None
    else:
        if session and session[0] is not None:
            new_session = session != view.bd_seq
            view.bd_seq = session
        else:
            new_session = view.status != "online"
        if new_session or view.status != "online":
            if view.status == "offline" or (new_session and view.session_start_s is not None):
                _clear_call(view)  # back after a loss: the old call is over until the station says so
            view.status_since_s = ts_s if ts_s is not None else now_s
            view.since_exact = ts_s is not None or not retained
            view.session_start_s = ts_s
        view.status = "online"
        _names(view, record)
    if isinstance(record.get("outbox_depth"), int) and not isinstance(record.get("outbox_depth"), bool):
        view.outbox_depth = max(0, record["outbox_depth"])


def _fold_state(view: StationView, s: dict, now_s: float) -> None:
    _names(view, s)
    ref_s = epoch(s.get("ts"))
    if ref_s is not None and view.session_start_s is not None and ref_s < view.session_start_s - BACKLOG_SLACK_S:
        return  # the retained state of an earlier session: the station will publish its own
    ref_s = now_s if ref_s is None else ref_s
    call = s.get("call")
    call = call if isinstance(call, str) and call else None
    if call is None:
        _clear_call(view)
    else:
        started_s, call_s = epoch(s.get("call_started")), _num(s.get("call_s"))
        if started_s is not None:
            view.call_since_s = started_s
        elif call_s is not None:
            view.call_since_s = ref_s - call_s
        elif call != view.call:  # no `call_s` in the state: resume a call a reconnect dropped, else unknown
            dropped = view.dropped_call
            view.call_since_s = dropped[1] if dropped and dropped[0] == call else None
        view.call = call
    if s.get("on_hold") is True:
        since = ref_s - (_num(s.get("hold_s")) or 0.0)
        if view.hold_since_s is None or abs(view.hold_since_s - since) > 2.0:
            view.hold_since_s = since
    elif "on_hold" in s:
        view.hold_since_s = None
    view.phase = _text(s.get("phase"))
    cue = _text(s.get("cue"))
    _set_cue(view, cue, ref_s)
    if isinstance(s.get("line"), dict):
        view.line = {str(k)[:8]: _text(v, 16) for k, v in s["line"].items() if isinstance(v, str)}
    faults = s.get("faults")
    if isinstance(faults, dict):
        view.faults = {str(k)[:32]: _text(v) for k, v in faults.items()}
    elif isinstance(faults, list):
        view.faults = {str(f)[:32]: "" for f in faults}
    depth = s.get("outbox_depth")
    if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 0:
        view.outbox_depth = depth


def _set_cue(view: StationView, cue: str, ts_s: float) -> None:
    view.cue = cue
    if cue in DEAD_AIR_CUES:
        if view.dead_air_since_s is None:
            view.dead_air_since_s = ts_s
    else:
        view.dead_air_since_s = None


def _fold_event(view: StationView, e: dict, now_s: float) -> None:
    kind = _text(e.get("type"), 40)
    ts_s = epoch(e.get("ts"))
    if kind == "rule.violation":
        view.violations.append(ts_s if ts_s is not None else now_s)
        while view.violations and view.violations[0] < now_s - VIOLATION_MEMORY_S:
            view.violations.popleft()
    backlog = ts_s is not None and view.session_start_s is not None and ts_s < view.session_start_s - BACKLOG_SLACK_S
    if backlog or (not view.online and kind != "station.online"):
        return  # the outbox's backlog of an outage, or a late message after the will: not live
    ts_s = now_s if ts_s is None else ts_s
    view.last_event, view.last_event_ts_s = kind, ts_s
    _names(view, e)
    if kind == "station.online":
        if view.status != "online":
            view.status, view.status_since_s, view.since_exact = "online", ts_s, True
    elif kind == "station.offline":
        view.status, view.status_since_s, view.since_exact = "offline", ts_s, True
    elif kind == "call.start":
        call = e.get("call")
        view.call = call if isinstance(call, str) and call else (view.call or "?")
        view.call_since_s, view.hold_since_s, view.dead_air_since_s = ts_s, None, None
    elif kind == "call.end":
        _clear_call(view)
    elif kind == "hold.start":
        view.hold_since_s = ts_s
        if view.call is None:
            view.call = e.get("call") if isinstance(e.get("call"), str) else "?"
    elif kind == "hold.end":
        view.hold_since_s = None
    elif kind == "cue":
        _set_cue(view, _text(e.get("cue"), 40), ts_s)
    elif kind == "dead_air":
        view.dead_air_since_s = None
    elif kind == "line" and isinstance(e.get("channel"), str):
        view.line[e["channel"][:8]] = _text(e.get("condition"), 16)
    elif kind == "fault" and isinstance(e.get("component"), str):
        view.faults[e["component"][:32]] = _text(e.get("detail"))
    elif kind == "fault.cleared":
        view.faults.pop(str(e.get("component")), None)


def table_rows(fleet: dict, now_s: float, sort_key: str = "station") -> list[dict]:
    """Plain dicts, sorted: text keys ascending; hold, call, faults, outbox descending (worst first)."""
    keyfn = {
        "station": lambda r: (r["station"], r["site"]),
        "desk": lambda r: (r["name"], r["site"], r["station"]),
        "site": lambda r: (r["site"], r["name"], r["station"]),
        "status": lambda r: (r["status"] == "online", r["site"], r["station"]),
        "hold": lambda r: (-r["hold_s"], r["station"]),
        "call": lambda r: (-(r["call_s"] or 0.0), not r["on_call"], r["station"]),
        "faults": lambda r: (-len(r["faults"]), r["station"]),
        "outbox": lambda r: (-(r["outbox_depth"] or 0), r["station"]),
        "last_seen": lambda r: (r["last_seen_s"], r["station"]),
    }.get(sort_key)
    if keyfn is None:
        raise FleetInputError(f"--sort: {sort_key!r} is not one of {', '.join(SORT_KEYS)}")
    return sorted((v.as_dict(now_s) for v in fleet.values()), key=keyfn)


def site_summary(views, now_s: float, hold_limit_s: float = HOLD_LIMIT_S) -> list[dict]:
    """One dict per site, sorted by site, over StationViews: stations, on call, on hold, over
    the hold limit, dead air now, offline, with faults."""
    sites: dict[str, dict] = {}
    for v in views:
        s = sites.get(v.site)
        if s is None:
            s = sites[v.site] = {
                "site": v.site,
                "stations": 0,
                "on_call": 0,
                "on_hold": 0,
                "over_limit": 0,
                "dead_air": 0,
                "offline": 0,
                "faults": 0,
            }
        s["stations"] += 1
        if v.online:
            s["on_call"] += v.call is not None
            if v.hold_since_s is not None:
                s["on_hold"] += 1
                s["over_limit"] += v.hold_s(now_s) >= hold_limit_s
            s["dead_air"] += v.call is not None and v.dead_air_since_s is not None
        else:
            s["offline"] += 1
        s["faults"] += bool(v.faults)
    return [sites[k] for k in sorted(sites)]


class FleetFeed:
    """Subscribes to every station topic and folds messages into `fleet` under a lock.

    The subscription is QoS 0: a live view wants the newest message now, not a redelivery
    later, and the retained `status`/`state` restore the truth after any gap. (With QoS 1,
    the broker's in-flight window and paho's acknowledgements held 2,000 events/s back to a
    few hundred per second on a loaded machine: the view fell seconds behind.)
    `changed()` hands over the rows folded since the last call (for the board's pushes)."""

    def __init__(self, url: str | BrokerUrl, client_id: str = ""):
        self.broker = broker = parse_broker_url(url)  # a BrokerUrl (login_from_args) passes through
        self.fleet: dict = {}
        self.lock = threading.Lock()
        self._changed: set = set()
        self.messages = 0
        # MQTT 3.1.1: nothing of MQTT 5 is needed to read, and paho decodes it in ~60 % of the time
        self.client = login.make_client(
            broker, client_id or f"hs-monitor-{int(time.time() * 1000) % 10**9}", protocol=mqtt.MQTTv311
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._loop: asyncio.AbstractEventLoop | None = None  # asyncio mode (start_async)
        self._loop_thread = 0
        self._keeper: asyncio.Task | None = None

    @staticmethod
    def _on_connect(client, userdata, flags, reason, properties):
        if not reason.is_failure:
            client.subscribe([(t, 0) for t in SUBSCRIPTIONS])

    def _on_message(self, client, userdata, msg):
        try:
            with self.lock:
                key = fold_message(self.fleet, msg.topic, msg.payload, time.time(), bool(msg.retain))
                self.messages += 1
                if key is not None:
                    self._changed.add(key)
        except Exception:  # never kill paho's network thread over one odd payload
            pass

    def start(self):
        """Connect and read on paho's own network thread (the terminal monitor)."""
        connect_blocking(self.client, self.broker)  # on_connect subscribes, on every reconnect too

    # --- asyncio mode (the board): the broker socket is read on the event loop ----------------
    # paho's thread would read one QoS 0 packet per select() and hand the GIL back and forth
    # with the loop that renders and writes the pushes; under load it fell tens of seconds
    # behind while using a fraction of a core. Here the loop's selector watches the socket
    # (paho's external-loop API: on_socket_* callbacks, loop_read/loop_write/loop_misc) and
    # one wake-up reads every packet already there (up to READ_BURST).
    async def start_async(self, timeout_s: float = 5.0) -> None:
        """Connect and read the broker on the running event loop; FleetBrokerError if there is
        no CONNACK within timeout_s. Reconnects by itself (back-off up to RECONNECT_MAX_S)."""
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        c = self.client
        c.on_socket_open = lambda _c, _u, sock: self._on_loop(self._watch, sock)
        c.on_socket_close = lambda _c, _u, sock: self._on_loop(self._unwatch, sock)
        c.on_socket_register_write = lambda _c, _u, sock: self._on_loop(self._want_write, sock, True)
        c.on_socket_unregister_write = lambda _c, _u, sock: self._on_loop(self._want_write, sock, False)
        connack: asyncio.Future = loop.create_future()

        def first_connect(client, userdata, flags, reason, properties):  # read on the loop
            if not connack.done():
                connack.set_result(reason)
            self._on_connect(client, userdata, flags, reason, properties)

        c.on_connect = first_connect
        where = f"mqtt://{self.broker.host}:{self.broker.port}"
        try:
            await loop.run_in_executor(None, lambda: c.connect(self.broker.host, self.broker.port, keepalive=60))
            reason = await asyncio.wait_for(connack, timeout_s)
        except (OSError, ssl.SSLError) as exc:
            raise FleetBrokerError(f"{where}: cannot connect: {exc}") from None
        except TimeoutError:
            raise FleetBrokerError(f"{where}: no answer within {timeout_s:g} s") from None
        finally:
            c.on_connect = self._on_connect
        if reason.is_failure:
            raise FleetBrokerError(f"{where}: refused: {reason}")
        self._keeper = loop.create_task(self._keep_connected())

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("FleetFeed: not started with start_async")
        return self._loop

    def _on_loop(self, fn, *args) -> None:
        """Run fn on the event loop: now when called there, else queued (a reconnect runs in
        an executor thread; its socket is registered on the loop, in order)."""
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._event_loop().call_soon_threadsafe(fn, *args)

    def _watch(self, sock) -> None:
        if self.client.socket() is sock:
            self._event_loop().add_reader(sock, self._readable)

    def _unwatch(self, sock) -> None:
        with contextlib.suppress(ValueError, OSError):  # already closed
            self._event_loop().remove_reader(sock)
            self._event_loop().remove_writer(sock)

    def _want_write(self, sock, on: bool) -> None:
        if self.client.socket() is not sock:
            return
        with contextlib.suppress(ValueError, OSError):
            if on:
                self._event_loop().add_writer(sock, self.client.loop_write)
            else:
                self._event_loop().remove_writer(sock)

    def _readable(self) -> None:
        for _ in range(READ_BURST):
            if self.client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                return  # lost: paho closed the socket (on_socket_close); _keep_connected reconnects
            sock = self.client.socket()
            if sock is None:
                return
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                continue
            if not select.select([sock], [], [], 0)[0]:
                return

    async def _keep_connected(self) -> None:
        """Keep-alive pings every second; after a loss, reconnect with back-off."""
        pause_s = 1.0
        while True:
            await asyncio.sleep(1.0)
            if self.client.socket() is not None:
                self.client.loop_misc()
                pause_s = 1.0
                continue
            try:
                await self._event_loop().run_in_executor(None, self.client.reconnect)
                log.info("broker: reconnected to %s:%d", self.broker.host, self.broker.port)
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.warning("broker: reconnect to %s:%d failed: %s", self.broker.host, self.broker.port, exc)
                await asyncio.sleep(pause_s)
                pause_s = min(pause_s * 2, RECONNECT_MAX_S)

    def rows(self, sort_key: str = "station", now_s: float | None = None) -> list[dict]:
        with self.lock:
            return table_rows(self.fleet, time.time() if now_s is None else now_s, sort_key)

    def changed(self, now_s: float | None = None) -> list[dict]:
        """Rows of the stations changed since the last call (unsorted)."""
        now_s = time.time() if now_s is None else now_s
        with self.lock:
            keys, self._changed = self._changed, set()
            return [self.fleet[k].as_dict(now_s) for k in keys if k in self.fleet]

    def summary(self, hold_limit_s: float = HOLD_LIMIT_S, now_s: float | None = None) -> list[dict]:
        with self.lock:
            return site_summary(self.fleet.values(), time.time() if now_s is None else now_s, hold_limit_s)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish on the feed's own connection (e.g. alerts on the fleet topic); never blocks."""
        self.client.publish(topic, payload, qos=qos)

    def snapshot(self, fn):
        """Run fn(fleet) under the lock (a read-only look at the views)."""
        with self.lock:
            return fn(self.fleet)

    def stop(self):
        """Disconnect (in asyncio mode: call on the loop's thread)."""
        keeper = self._keeper
        if keeper is None:
            self.client.disconnect()
            self.client.loop_stop()
            return
        keeper.cancel()
        self.client.disconnect()
        if self.client.socket() is not None:
            self.client.loop_write()  # sends DISCONNECT, then paho closes the socket


def run_json(url: str | BrokerUrl, wait_s: float = 1.0, sort_key: str = "station") -> int:
    table_rows({}, 0, sort_key)  # check the key before connecting
    feed = FleetFeed(url)
    feed.start()
    time.sleep(wait_s)
    rows, sites = feed.rows(sort_key), feed.summary()
    feed.stop()
    print(json.dumps({"stations": rows, "sites": sites, "count": len(rows)}, ensure_ascii=False, indent=1))
    return 0


def clock(ts_s: float | None) -> str:
    return datetime.fromtimestamp(ts_s).strftime("%H:%M:%S") if ts_s is not None else "?"


def duration(seconds: float | None) -> str:
    """'42 s', '3:07', '1:02:03'; '' for None."""
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def status_text(r: dict) -> str:
    if r["online"]:
        return r["status"]
    return (
        f"offline since {clock(r['status_since_s'])}"
        if r["since_exact"]
        else f"offline since before {clock(r['status_since_s'])}"
    )


def render(
    rows: list[dict],
    sites: list[dict] | tuple = (),
    lang: str = "en",
    hold_limit_s: float = HOLD_LIMIT_S,
    hold_warn_s: float = HOLD_WARN_S,
):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"headset stations ({len(rows)})", expand=True)
    for col in ("site", "desk", "status", "call", "hold", "cue", "line rx/tx", "faults", "outbox"):
        table.add_column(col)
    for r in rows:
        grey = "" if r["online"] else "dim "
        desk = r["name"] + (f" ({r['agent']})" if r["agent"] else "")
        status = Text(status_text(r), style="green" if r["online"] else "dim red")
        if r["on_call"]:
            call = f"on call {duration(r['call_s'])}".strip()
        else:
            call = "(was on call)" if r["was_on_call"] else ""
        hold = Text(duration(r["hold_s"]) if r["on_hold"] else ("(was on hold)" if r["was_on_hold"] else ""))
        if r["on_hold"] and r["hold_s"] >= hold_limit_s:
            hold.stylize("bold red")
        elif r["on_hold"] and r["hold_s"] >= hold_warn_s:
            hold.stylize("yellow")
        line = f"{r['line'].get('rx') or '-'}/{r['line'].get('tx') or '-'}"
        faults = Text(",".join(r["faults"]), style="red") if r["faults"] else ""
        outbox = "" if r["outbox_depth"] is None else str(r["outbox_depth"])
        table.add_row(
            Text(r["site"], style=grey),
            Text(desk, style=grey),
            status,
            Text(call, style=grey),
            hold,
            Text(r["cue_zh" if lang == "zh" else "cue_en"], style=grey),
            Text(line, style=grey),
            faults,
            Text(outbox, style=grey),
        )
    for s in sites:
        table.add_row(
            Text(s["site"], style="bold"),
            Text(f"{s['stations']} desks", style="bold"),
            f"{s['offline']} offline",
            f"{s['on_call']} on call",
            f"{s['on_hold']} on hold",
            f"{s['over_limit']} over limit, {s['dead_air']} dead air",
            "",
            f"{s['faults']} faults",
            "",
        )
    return table


def run_live(url: str | BrokerUrl, sort_key: str = "station", refresh_s: float = 1.0, lang: str = "en") -> int:
    from rich.live import Live

    table_rows({}, 0, sort_key)
    feed = FleetFeed(url)
    feed.start()
    try:
        with Live(render(feed.rows(sort_key), feed.summary(), lang), refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(refresh_s)
                live.update(render(feed.rows(sort_key), feed.summary(), lang))
    except KeyboardInterrupt:
        pass
    finally:
        feed.stop()
    return 0
