"""Load generator: N simulated stations publishing realistic event streams to a broker.

Design (2,000 stations on a small machine): a station is one paho client with its own
client id, credentials-free connection, retained `status` birth with a Last Will, and QoS 1
events under `hs/<site>/<station>/event`, exactly the layout of firmware/topics.py. paho's
`loop_start()` would cost one thread per station, so instead each worker *process* owns a
few hundred clients and drives them from one `selectors` loop (paho's external-loop API:
`socket()`, `loop_read()`, `loop_write()`, `loop_misc()`). Processes = ceil(N / per_process),
so the load spreads over the cores. Events come from `EventFactory` (the station's own
event builder) and a per-station call script (rings, answer, holds, dead air, overtalk,
violations, call end), handed out round-robin at the requested fleet-wide rate.

`mode="reporter"` instead runs each station through the station's own MQTT code
(`firmware.publisher.Reporter` draining a `firmware.outbox.Outbox` in a temp state dir):
faithful, but three threads and an SQLite outbox per station, so meant for tens of
stations, not thousands.
"""

from __future__ import annotations

import json
import math
import os
import multiprocessing as mp
import random
import selectors
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from ..events import EventFactory, to_json
from ..topics import QOS_EVENT, QOS_STATUS, Topics
from .connect import parse_broker_url


@dataclass
class LoadResult:
    stations: int = 0
    connected: int = 0
    published: int = 0
    acked: int = 0
    elapsed_s: float = 0.0
    errors: list = field(default_factory=list)

    @property
    def unacked(self) -> int:
        return self.published - self.acked

    def add(self, other: "LoadResult") -> None:
        self.stations += other.stations
        self.connected += other.connected
        self.published += other.published
        self.acked += other.acked
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)
        self.errors += other.errors

    def summary(self) -> str:
        rate = self.published / self.elapsed_s if self.elapsed_s else 0.0
        errs = f"; errors: {'; '.join(self.errors[:3])}" if self.errors else ""
        return (f"loadgen: {self.connected}/{self.stations} stations connected, {self.published} events published "
                f"in {self.elapsed_s:.1f} s ({rate:.0f}/s), {self.acked} acknowledged, {self.unacked} not{errs}")


def call_script(rng: random.Random):
    """An endless stream of (type, fields) for one station's calls, with realistic odds."""
    n = 0
    while True:
        n += 1
        call = f"c{n}-{rng.getrandbits(32):08x}"
        rings = rng.choices([1, 2, 3, 4, 5], [30, 35, 20, 10, 5])[0]
        for _ in range(rings):
            yield None, "ring", {"state": True}
        yield call, "call.start", {"rings": rings}
        if rings > 3:
            yield call, "rule.violation", {"rule": "answer-rings", "detail": f"answered after {rings} rings"}
        yield call, "hook", {"state": "off"}
        yield call, "cue", {"cue": "greet", "leds": {"green": "blink"}}
        yield call, "line", {"channel": "rx", "condition": "ok", "level_dbfs": -24.0, "noise_dbfs": -62.0, "snr_db": 38.0}
        holds, hold_s, dead_s, overtalk, violations = 0, 0.0, 0.0, 0, []
        if rng.random() < 0.35:
            holds, hold_s = 1, round(rng.uniform(5, 90), 1)
            yield call, "hold.start", {"after_s": 0.0}
            if hold_s > 45:
                yield call, "hold.warn", {"after_s": 45.0}
            if hold_s > 60:
                yield call, "hold.limit", {"after_s": 60.0}
                yield call, "rule.violation", {"rule": "hold-limit", "detail": "hold past 60 s"}
                violations.append("hold-limit")
            yield call, "hold.end", {"duration_s": hold_s}
        if rng.random() < 0.3:
            dead_s = round(rng.uniform(5, 15), 1)
            yield call, "dead_air", {"duration_s": dead_s}
        if rng.random() < 0.3:
            overtalk = 1
            yield call, "overtalk", {"duration_s": round(rng.uniform(0.5, 2), 2)}
        yield call, "hook", {"state": "on"}
        duration = round(rng.uniform(30, 400), 1)
        yield call, "call.end", {"duration_s": duration, "talk_s": {"tx": duration * 0.4, "rx": duration * 0.4},
                                 "overtalk_count": overtalk, "hold_count": holds, "hold_s": hold_s,
                                 "longest_hold_s": hold_s, "dead_air_s": dead_s, "violations": violations}


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
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"hs-{site}-{station}",
                                  protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(100)
        birth = {"status": "online", "bdSeq": 1, "boot_id": f"sim-{seed}"}
        self.client.will_set(self.topics.status, json.dumps({**birth, "status": "offline", "reason": "will"}),
                             QOS_STATUS, True)
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


def _worker(url: str, names: list[tuple[str, str, str]], rate_per_s: float, duration_s: float, out) -> None:
    broker = parse_broker_url(url)
    result = LoadResult(stations=len(names))
    sel = selectors.DefaultSelector()
    stations = [SimStation(site, sid, hash((site, sid)) & 0xFFFFFFFF) for site, sid, _ in names]
    for st, (_, _, password) in zip(stations, names):
        if password:  # provisioned: each station logs in as itself (username = station id)
            st.client.username_pw_set(st.station, password)
        elif broker.username:
            st.client.username_pw_set(broker.username, broker.password or None)
        try:
            st.client.connect(broker.host, broker.port, keepalive=60)
            sel.register(st.client.socket(), selectors.EVENT_READ, st)
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


def _reporter_worker(url: str, names: list[tuple[str, str, str]], rate_per_s: float, duration_s: float, out) -> None:
    """Each station through firmware.publisher.Reporter + firmware.outbox.Outbox (the station's code)."""
    import tempfile

    from ..outbox import Outbox
    from ..publisher import Reporter
    from ..settings import settings_from_dict

    result = LoadResult(stations=len(names))
    tmp = tempfile.TemporaryDirectory(prefix="hs-loadgen-")
    sims = []
    try:
        for k, (site, sid, password) in enumerate(names):
            state_dir = f"{tmp.name}/{sid}"
            mqtt_table = {"brokers": [url]}
            if password:
                os.makedirs(state_dir, exist_ok=True)
                pw_file = f"{state_dir}/mqtt-password"
                with os.fdopen(os.open(pw_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
                    fh.write(password + "\n")
                mqtt_table.update(username=sid, password_file=pw_file)
            settings = settings_from_dict({"station": {"id": sid, "site": site, "state_dir": state_dir},
                                           "mqtt": mqtt_table}, "loadgen")
            outbox = Outbox.in_state_dir(state_dir)
            reporter = Reporter(settings, outbox, profile_name=settings.station.profile)
            reporter.start()
            sims.append((reporter, outbox, EventFactory(sid, time.time(), outbox), call_script(random.Random(k))))
        deadline = time.monotonic() + 30
        while not all(r.connected for r, *_ in sims) and time.monotonic() < deadline:
            time.sleep(0.05)
        result.connected = sum(r.connected for r, *_ in sims)
        start, i = time.monotonic(), 0
        while (now := time.monotonic()) < start + duration_s:
            for _ in range(max(int((now - start) * rate_per_s) - result.published, 0)):
                reporter, _outbox, factory, script = sims[i % len(sims)]
                call, kind, fields = next(script)
                reporter.sink(factory.make(kind, time.time() - factory.epoch_s, call, **fields))
                i += 1
                result.published += 1
            time.sleep(0.005)
        result.elapsed_s = time.monotonic() - start
        for reporter, *_ in sims:
            reporter.wait_drained(30)
        result.acked = result.published - sum(o.event_depth for _, o, *_ in sims)
    except Exception as exc:  # reported in the result; the parent prints one line
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for reporter, outbox, *_ in sims:
            reporter.stop()
            outbox.close()
        tmp.cleanup()
        out.put(result)


def station_names(stations: int, sites: int, prefix: str) -> list[tuple[str, str, str]]:
    return [(f"site-{i % max(sites, 1):02d}", f"{prefix}-{i:05d}", "") for i in range(stations)]


def provisioned_names(out_dir: str, limit: int) -> list[tuple[str, str, str]]:
    """(site, station, password) of up to `limit` stations from a `provision --out` directory."""
    import tomllib
    from pathlib import Path

    from ..errors import InputError
    names = []
    for sdir in sorted(Path(out_dir, "stations").glob("*"))[:limit]:
        try:
            st = tomllib.loads((sdir / "station.toml").read_text())["station"]
            names.append((st["site"], st["id"], (sdir / "mqtt-password").read_text().strip()))
        except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{sdir}: not a provisioned station ({exc})") from None
    if not names:
        raise InputError(f"{out_dir}: no provisioned stations under stations/")
    return names


def run_loadgen(url: str, *, stations: int, rate_per_s: float, duration_s: float, per_process: int = 250,
                sites: int = 4, prefix: str = "sim", mode: str = "direct", provisioned: str = "") -> LoadResult:
    """Run the load in ceil(stations / per_process) processes; returns the summed counts.
    mode "direct": shared-loop paho clients; "reporter": the station's Reporter and Outbox."""
    worker = {"direct": _worker, "reporter": _reporter_worker}[mode]
    parse_broker_url(url)  # a bad URL fails here, once, not in every worker
    names = provisioned_names(provisioned, stations) if provisioned else station_names(stations, sites, prefix)
    for site, sid, _ in names:
        Topics(site, sid)  # a bad id (say --prefix a/b) fails here, once, not in every worker
    stations = len(names)
    procs_n = max(1, math.ceil(stations / max(per_process, 1)))
    chunks = [names[k::procs_n] for k in range(procs_n)]
    ctx = mp.get_context("spawn")  # not fork: the caller may have threads (paho loops) holding locks
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(url, chunk, rate_per_s * len(chunk) / stations, duration_s, out))
             for chunk in chunks]
    for p in procs:
        p.start()
    total = LoadResult()
    for _ in procs:
        total.add(out.get(timeout=duration_s + 120))
    for p in procs:
        p.join(10)
    return total
