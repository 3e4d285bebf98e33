"""Fleet monitor: every station's status, call, hold timer, cue, line, faults and outbox depth.

The model is pure: `fold(fleet, topic, payload, now_s)` folds one MQTT message (retained
`status`/`state`, then live `event` and `telemetry`) into a dict of `StationView`s, and
`table_rows(fleet, now_s, sort_key)` turns it into plain dicts. The view (`run_live`, a
rich Live table) and `run_json` (retained messages for ~1 s, then JSON) only feed it.

A stale Last Will is ignored as firmware/topics.py asks: an `offline` status whose `bdSeq`
differs from the latest birth's belongs to an older connection.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from firmware.protocol.topics import ALL_EVENTS, ALL_STATUS, ROOT, parse
from headset_fleet.connect import connect_blocking, make_client, parse_broker_url
from headset_fleet.errors import FleetInputError

SUBSCRIPTIONS = (ALL_STATUS, f"{ROOT}/+/+/state", ALL_EVENTS, f"{ROOT}/+/+/telemetry")
SORT_KEYS = ("station", "site", "status", "hold", "faults", "outbox", "last_seen")


@dataclass
class StationView:
    site: str
    station: str
    status: str = "unknown"
    bd_seq: tuple | None = None  # (bdSeq, boot_id) of the latest birth
    call: str | None = None
    phase: str = ""
    hold_since_s: float | None = None  # wall clock; None = not on hold
    cue: str = ""
    line: dict = field(default_factory=dict)
    faults: dict = field(default_factory=dict)
    outbox_depth: int | None = None
    last_seen_s: float = 0.0
    last_event: str = ""

    def hold_s(self, now_s: float) -> float:
        return max(0.0, now_s - self.hold_since_s) if self.hold_since_s is not None else 0.0

    def as_dict(self, now_s: float) -> dict:
        return {"site": self.site, "station": self.station, "status": self.status,
                "on_call": self.call is not None, "call": self.call, "phase": self.phase,
                "on_hold": self.hold_since_s is not None, "hold_s": round(self.hold_s(now_s), 1),
                "cue": self.cue, "line": dict(self.line), "faults": dict(self.faults),
                "outbox_depth": self.outbox_depth, "last_event": self.last_event,
                "last_seen_s": round(self.last_seen_s, 3)}


def _epoch(ts, default: float) -> float:
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _decode(payload: bytes):
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload.decode("utf-8", "replace").strip()


def fold(fleet: dict, topic: str, payload: bytes, now_s: float) -> dict:
    """Fold one message into `fleet` ({(site, station): StationView}); returns `fleet`."""
    parsed = parse(topic)
    if parsed is None or not payload:
        return fleet  # an empty retained payload clears a topic; nothing to show
    site, station, kind = parsed
    view = fleet.setdefault((site, station), StationView(site, station))
    view.last_seen_s = now_s
    data = _decode(payload)
    if kind == "status":
        _fold_status(view, data)
    elif kind == "state" and isinstance(data, dict):
        _fold_state(view, data, now_s)
    elif kind == "event" and isinstance(data, dict):
        _fold_event(view, data, now_s)
    elif kind == "telemetry" and isinstance(data, dict):
        depth = data.get("outbox_depth", data.get("outbox"))
        if isinstance(depth, dict):
            depth = depth.get("depth", depth.get("pending"))
        if isinstance(depth, int):
            view.outbox_depth = depth
    return fleet


def _fold_status(view: StationView, data) -> None:
    status = data.get("status") if isinstance(data, dict) else data
    session = (data.get("bdSeq"), data.get("boot_id")) if isinstance(data, dict) else None
    if status == "offline" and session and view.bd_seq is not None and session != view.bd_seq:
        return  # the will of an older connection (another bdSeq or another boot)
    if status == "online" and session and session[0] is not None:
        view.bd_seq = session
    if isinstance(status, str) and status:
        view.status = status
    if isinstance(data, dict) and isinstance(data.get("outbox_depth"), int):
        view.outbox_depth = data["outbox_depth"]


def _fold_state(view: StationView, s: dict, now_s: float) -> None:
    view.call = s.get("call")
    view.phase = str(s.get("phase") or "")
    if s.get("on_hold"):
        hold_s = _num(s.get("hold_s"))
        since = now_s - hold_s
        if view.hold_since_s is None or abs(view.hold_since_s - since) > 2.0:
            view.hold_since_s = since
    else:
        view.hold_since_s = None
    view.cue = str(s.get("cue") or "")
    if isinstance(s.get("line"), dict):
        view.line = {str(k): v for k, v in s["line"].items() if v is not None}
    faults = s.get("faults")
    if isinstance(faults, dict):
        view.faults = dict(faults)
    elif isinstance(faults, list):
        view.faults = {str(f): "" for f in faults}
    if isinstance(s.get("outbox_depth"), int):
        view.outbox_depth = s["outbox_depth"]


def _fold_event(view: StationView, e: dict, now_s: float) -> None:
    kind = e.get("type", "")
    view.last_event = str(kind)
    if kind == "station.online":
        view.status = "online"
    elif kind == "station.offline":
        view.status = "offline"
    elif kind == "call.start":
        view.call = e.get("call") or view.call or "?"
    elif kind == "call.end":
        view.call, view.hold_since_s, view.phase = None, None, ""
    elif kind == "hold.start":
        view.hold_since_s = _epoch(e.get("ts"), now_s)
    elif kind == "hold.end":
        view.hold_since_s = None
    elif kind == "cue":
        view.cue = str(e.get("cue") or "")
    elif kind == "line" and e.get("channel"):
        view.line[str(e["channel"])] = e.get("condition")
    elif kind == "fault" and e.get("component"):
        view.faults[str(e["component"])] = e.get("detail", "")
    elif kind == "fault.cleared":
        view.faults.pop(str(e.get("component")), None)


def table_rows(fleet: dict, now_s: float, sort_key: str = "station") -> list[dict]:
    """Plain dicts, sorted: text keys ascending; hold, faults, outbox descending (worst first)."""
    rows = [v.as_dict(now_s) for v in fleet.values()]
    keyfn = {
        "station": lambda r: (r["station"], r["site"]),
        "site": lambda r: (r["site"], r["station"]),
        "status": lambda r: (r["status"] == "online", r["site"], r["station"]),
        "hold": lambda r: (-r["hold_s"], r["station"]),
        "faults": lambda r: (-len(r["faults"]), r["station"]),
        "outbox": lambda r: (-(r["outbox_depth"] or 0), r["station"]),
        "last_seen": lambda r: (r["last_seen_s"], r["station"]),
    }.get(sort_key)
    if keyfn is None:
        raise FleetInputError(f"--sort: {sort_key!r} is not one of {', '.join(SORT_KEYS)}")
    return sorted(rows, key=keyfn)


class FleetFeed:
    """Subscribes to every station topic and folds messages into `fleet` under a lock."""

    def __init__(self, url: str):
        self.broker = parse_broker_url(url)
        self.fleet: dict = {}
        self.lock = threading.Lock()
        self.client = make_client(f"hs-monitor-{int(time.time() * 1000) % 10**9}", broker=self.broker)
        self.client.on_connect = lambda c, *a: [c.subscribe(t, qos=1) for t in SUBSCRIPTIONS]
        self.client.on_message = self._on_message

    def _on_message(self, client, userdata, msg):
        try:
            with self.lock:
                fold(self.fleet, msg.topic, msg.payload, time.time())
        except Exception:  # never kill paho's network thread over one odd payload
            pass

    def start(self):
        connect_blocking(self.client, self.broker)  # on_connect subscribes, on every reconnect too

    def rows(self, sort_key: str) -> list[dict]:
        with self.lock:
            return table_rows(self.fleet, time.time(), sort_key)

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def run_json(url: str, wait_s: float = 1.0, sort_key: str = "station") -> int:
    table_rows({}, 0, sort_key)  # check the key before connecting
    feed = FleetFeed(url)
    feed.start()
    time.sleep(wait_s)
    rows = feed.rows(sort_key)
    feed.stop()
    print(json.dumps({"stations": rows, "count": len(rows)}, ensure_ascii=False, indent=1))
    return 0


def render(rows: list[dict]):
    from rich.table import Table
    table = Table(title=f"headset stations ({len(rows)})", expand=True)
    for col in ("site", "station", "status", "call", "hold", "cue", "line rx/tx", "faults", "outbox"):
        table.add_column(col)
    for r in rows:
        status = {"online": "[green]online", "offline": "[red]offline"}.get(r["status"], r["status"])
        hold = f"{r['hold_s']:.0f} s" if r["on_hold"] else ""
        if r["on_hold"] and r["hold_s"] >= 60:
            hold = f"[bold red]{hold}"
        elif r["on_hold"] and r["hold_s"] >= 45:
            hold = f"[yellow]{hold}"
        line = f"{r['line'].get('rx') or '-'}/{r['line'].get('tx') or '-'}"
        faults = "[red]" + ",".join(r["faults"]) if r["faults"] else ""
        outbox = "" if r["outbox_depth"] is None else str(r["outbox_depth"])
        table.add_row(r["site"], r["station"], status, "yes" if r["on_call"] else "", hold,
                      r["cue"], line, faults, outbox)
    return table


def run_live(url: str, sort_key: str = "station", refresh_s: float = 1.0) -> int:
    from rich.live import Live
    table_rows({}, 0, sort_key)
    feed = FleetFeed(url)
    feed.start()
    try:
        with Live(render(feed.rows(sort_key)), refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(refresh_s)
                live.update(render(feed.rows(sort_key)))
    except KeyboardInterrupt:
        pass
    finally:
        feed.stop()
    return 0
