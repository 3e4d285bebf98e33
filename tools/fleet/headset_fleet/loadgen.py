"""Load generator: N simulated stations publishing realistic event streams to a broker.

Design (2,000 stations on a small machine): a station is one paho client with its own
client id, credentials-free connection, retained `status` birth with a Last Will, and QoS 1
events under `hs/<site>/<station>/event`, exactly the layout of firmware/protocol/topics.py. paho's
`loop_start()` would cost one thread per station, so instead each worker *process* owns a
few hundred clients and drives them from one `selectors` loop (paho's external-loop API:
`socket()`, `loop_read()`, `loop_write()`, `loop_misc()`). Processes = ceil(N / per_process),
so the load spreads over the cores. Events come from `EventFactory` (the station's own
event builder) and a per-station call script (rings, answer, holds, dead air, overtalk,
violations, call end), handed out round-robin at the requested fleet-wide rate.

`mode="reporter"` instead runs each station through the station's own MQTT code
(`headset_fleet.loadgen_reporter`: the station's Reporter draining its Outbox in a temp state dir):
faithful, but three threads and an SQLite outbox per station, so meant for tens of
stations, not thousands.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import random
import selectors
import time

import paho.mqtt.client as mqtt

from firmware.protocol.envelope import EventFactory, to_json
from firmware.protocol.topics import QOS_EVENT, QOS_STATUS, Topics
from headset_fleet.connect import parse_broker_url
from headset_fleet.errors import FleetInputError
from headset_fleet.loadgen_reporter import reporter_worker
from headset_fleet.simcalls import LoadResult, call_script


class SimStation:
    """One simulated station: a paho client driven by the worker's shared loop."""

    def __init__(self, site: str, station: str, seed: int):
        self.station = station
        self.topics = Topics(site, station)
        self.factory = EventFactory(station, time.time())
        self.script = call_script(random.Random(seed))
        self.pending: set[int] = set()
        self.acked = 0
        self.connected = False
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"hs-{site}-{station}", protocol=mqtt.MQTTv311
        )
        self.client.max_inflight_messages_set(100)
        birth = {"status": "online", "bdSeq": 1, "boot_id": f"sim-{seed}"}
        self.client.will_set(
            self.topics.status, json.dumps({**birth, "status": "offline", "reason": "will"}), QOS_STATUS, True
        )
        self.client.on_connect = lambda c, u, f, rc, p: self._on_connect(rc, birth)
        self.client.on_publish = self._on_publish

    def _on_connect(self, rc, birth):
        if not rc.is_failure:
            self.connected = True
            self.client.publish(self.topics.status, json.dumps(birth), QOS_STATUS, retain=True)

    def _on_publish(self, client, userdata, mid, rc, props):
        if mid in self.pending:
            self.pending.discard(mid)
            self.acked += 1

    def emit(self) -> None:
        call, kind, fields = next(self.script)
        event = self.factory.make(kind, time.time() - self.factory.epoch_s, call, **fields)
        info = self.client.publish(self.topics.event, to_json(event), qos=QOS_EVENT)
        self.pending.add(info.mid)


def _worker(url, names: list[tuple[str, str, str]], rate_per_s: float, duration_s: float, out) -> None:
    broker = parse_broker_url(url)
    result = LoadResult(stations=len(names))
    sel = selectors.DefaultSelector()
    stations = [SimStation(site, sid, hash((site, sid)) & 0xFFFFFFFF) for site, sid, _ in names]
    for st, (_, _, password) in zip(stations, names, strict=True):
        if password:  # provisioned: each station logs in as itself (username = station id)
            st.client.username_pw_set(st.station, password)
        elif broker.username:
            st.client.username_pw_set(broker.username, broker.password or None)
        try:
            st.client.connect(broker.host, broker.port, keepalive=60)
            sock = st.client.socket()
            if sock is None:
                raise OSError("no socket after connect")
            sel.register(sock, selectors.EVENT_READ, st)
        except OSError as exc:
            result.errors.append(f"{st.station}: {exc}")

    def pump(timeout_s: float) -> None:
        for key, _ in sel.select(timeout_s):
            st = key.data
            if st.client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                # The link is gone (no reconnects here: a simulator, not the station; use
                # --mode reporter for outage tests). Its unacked events count as not acked.
                sel.unregister(key.fileobj)
                st.connected = False
                result.errors.append(f"{st.station}: connection lost")
        for st in stations:
            if st.client.want_write():
                st.client.loop_write()

    deadline = time.monotonic() + 30
    while sum(s.connected for s in stations) < len(sel.get_map()) and time.monotonic() < deadline:
        pump(0.05)
    live = [s for s in stations if s.connected]
    result.connected = len(live)
    start = last_misc = time.monotonic()
    i = 0
    while live and (now := time.monotonic()) < start + duration_s:
        due = int((now - start) * rate_per_s) - result.published
        for _ in range(max(due, 0)):
            live[i % len(live)].emit()
            i += 1
            result.published += 1
        pump(0.005)
        if len(live) != sum(s.connected for s in live):
            live = [s for s in live if s.connected]
        if now - last_misc > 1.0:
            last_misc = now
            for st in stations:
                st.client.loop_misc()
    result.elapsed_s = time.monotonic() - start
    deadline = time.monotonic() + 30
    while any(s.pending for s in live) and time.monotonic() < deadline:
        pump(0.05)
    result.acked = sum(s.acked for s in stations)
    for st in stations:
        try:
            st.client.disconnect()
            st.client.loop_write()
        except Exception:
            pass
    out.put(result)


def station_names(stations: int, sites: int, prefix: str) -> list[tuple[str, str, str]]:
    return [(f"site-{i % max(sites, 1):02d}", f"{prefix}-{i:05d}", "") for i in range(stations)]


def provisioned_names(out_dir: str, limit: int) -> list[tuple[str, str, str]]:
    """(site, station, password) of up to `limit` stations from a `provision --out` directory."""
    import tomllib
    from pathlib import Path

    names = []
    for sdir in sorted(Path(out_dir, "stations").glob("*"))[:limit]:
        try:
            st = tomllib.loads((sdir / "station.toml").read_text())["station"]
            names.append((st["site"], st["id"], (sdir / "mqtt-password").read_text().strip()))
        except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
            raise FleetInputError(f"{sdir}: not a provisioned station ({exc})") from None
    if not names:
        raise FleetInputError(f"{out_dir}: no provisioned stations under stations/")
    return names


def check_number(option: str, value, lo: float, hi: float, integer: bool = False):
    """`value` (a number or its text) if finite and within [lo, hi], else FleetInputError (exit 2)."""
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not (math.isfinite(number) and lo <= number <= hi) or (integer and number != int(number)):
        kind = "a whole number" if integer else "a number"
        raise FleetInputError(f"{option}: {value!r} must be {kind} from {lo:g} to {hi:g}")
    return int(number) if integer else number


def run_loadgen(
    url,
    *,
    stations: int,
    rate_per_s: float,
    duration_s: float,
    per_process: int = 250,
    sites: int = 4,
    prefix: str = "sim",
    mode: str = "direct",
    provisioned: str = "",
) -> LoadResult:
    """Run the load in ceil(stations / per_process) processes; returns the summed counts.
    mode "direct": shared-loop paho clients; "reporter": the station's Reporter and Outbox.
    `url`: a broker URL, or a BrokerUrl with the password already resolved (--password-file).
    Every number is checked (finite, in range) before anything starts."""
    stations = check_number("--stations", stations, 1, 100_000, integer=True)
    rate_per_s = check_number("--rate", rate_per_s, 0.001, 1_000_000)
    duration_s = check_number("--duration-s", duration_s, 0.001, 7 * 86400)
    per_process = check_number("--per-process", per_process, 1, 100_000, integer=True)
    sites = check_number("--sites", sites, 1, 100_000, integer=True)
    worker = {"direct": _worker, "reporter": reporter_worker}[mode]
    login = parse_broker_url(url)  # a bad URL fails here, once, not in every worker
    url = login if mode == "direct" else (url if isinstance(url, str) else login.url)
    names = provisioned_names(provisioned, stations) if provisioned else station_names(stations, sites, prefix)
    for site, sid, _ in names:
        Topics(site, sid)  # a bad id (say --prefix a/b) fails here, once, not in every worker
    stations = len(names)
    procs_n = max(1, math.ceil(stations / max(per_process, 1)))
    chunks = [names[k::procs_n] for k in range(procs_n)]
    ctx = mp.get_context("spawn")  # not fork: the caller may have threads (paho loops) holding locks
    out = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(url, chunk, rate_per_s * len(chunk) / stations, duration_s, out))
        for chunk in chunks
    ]
    for p in procs:
        p.start()
    total = LoadResult()
    for _ in procs:
        total.add(out.get(timeout=duration_s + 120))
    for p in procs:
        p.join(10)
    return total
