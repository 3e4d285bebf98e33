"""The collector: station events from the broker into the event store, none lost, none doubled.

It subscribes to `$share/<group>/hs/+/+/event` at QoS 1 so several collectors split the
load, over MQTT 5 with `clean_start=False`, a fixed client id and a long session expiry: the
broker keeps the subscription and queues events while a collector or the broker itself
restarts (Mosquitto needs `persistence true` for the latter). paho runs with
`manual_ack=True`; a worker thread stores events in batches and acknowledges each message
only after the batch's commit. A crash between commit and ack makes the broker redeliver,
and the store's `ON CONFLICT (id) DO NOTHING` drops the copy.

The station and site of a stored event come from the topic (`hs/<site>/<station>/event`),
which the broker's ACL lets only that station write; an event whose payload names another
station or site is acknowledged but never stored, counted in `stats.rejected` and
`stats.mismatched`, and logged once per topic station.

On a broker set up as config/mosquitto asks (`use_username_as_clientid true`) the client id
is the broker user, so each collector instance needs its own user (`provision --collector
NAME`); with a user the client id defaults to it.

Acks are sent only for messages received on the current connection: after a reconnect the
broker redelivers whatever was unacknowledged, with the same packet id, and acking a stale
id could acknowledge a different message.

It also reads every station's retained `status` (`hs/+/+/status`, QoS 0, not shared: each
collector gets every birth again at each connect) and records the desk, agent and time zone
each station reports in the store's `stations` table, so the report learns a site's zone
without an inventory. A broker whose ACL does not let the collector read status (older
provisioning) just leaves that table empty.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.protocol.topics import ALL_EVENTS, ALL_STATUS, parse
from headset_fleet.connect import BrokerUrl, make_client
from headset_fleet.errors import FleetBrokerError, FleetStoreError
from headset_fleet.store import EventStore, event_row, station_row

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # a collector down for a week still gets its backlog
RECEIVE_MAXIMUM = 1000  # unacknowledged messages the broker may have in flight to us


@dataclass
class CollectorStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    mismatched: int = 0  # of `rejected`: payload station/site differs from the topic's
    births: int = 0  # station births recorded (desk, agent, tz) from `status`; not in `received`
    acked: int = 0
    connects: int = 0
    store_errors: int = 0
    last_error: str = ""


class IdentityMismatch(Exception):
    """An event's payload names another station or site than the topic it came on."""

    def __init__(self, key: tuple[str, str], message: str):
        super().__init__(message)
        self.key = key


class Progress:
    """`collect`'s progress lines: what a running collector received, stored and rejected since
    the previous line (read from its live `CollectorStats`, which only its own threads write)."""

    def __init__(self, stats: CollectorStats):
        self.stats = stats
        self._last = dataclasses.replace(stats)
        self._last_t = time.monotonic()

    def line(self) -> str:
        now, now_t = dataclasses.replace(self.stats), time.monotonic()
        last, span_s = self._last, max(now_t - self._last_t, 1e-9)
        self._last, self._last_t = now, now_t
        stored = now.stored - last.stored
        text = (
            f"collect: {span_s:.0f} s: received {now.received - last.received}, stored {stored} "
            f"({stored / span_s:.0f}/s), duplicates {now.duplicates - last.duplicates}, "
            f"rejected {now.rejected - last.rejected}; total stored {now.stored}"
        )
        if now.store_errors > last.store_errors:
            text += f"; store errors {now.store_errors - last.store_errors} ({now.last_error})"
        return text


class Collector:
    """One collector process's consumer. `start()`, then `stop()`; `stats` is live."""

    def __init__(
        self,
        broker: BrokerUrl,
        store: EventStore,
        *,
        group: str = "collectors",
        client_id: str = "",
        batch_max: int = 500,
        batch_wait_s: float = 0.005,
        ca_file: str = "",
        cert_file: str = "",
        key_file: str = "",
    ):
        self.broker = broker
        self.store = store
        self.group = group
        # Fixed, so the broker keeps the session. A broker binding client ids to users uses the
        # user name whatever we send, so default to it; without a user, one id per host.
        self.client_id = client_id or broker.username or f"hs-collector-{group}-{socket.gethostname()}"
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.stats = CollectorStats()
        self._queue: queue.Queue = queue.Queue()
        self._generation = 0
        self._retiring = False
        self._mismatch_logged: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._worker = threading.Thread(target=self._work, name="collector-store", daemon=True)
        self.client = make_client(
            self.client_id, manual_ack=True, broker=broker, ca_file=ca_file, cert_file=cert_file, key_file=key_file
        )
        # paho annotates the delays as int, but they are seconds added to time.monotonic(): a float works
        self.client.reconnect_delay_set(0.2, 5)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    @property
    def topic(self) -> str:
        return f"$share/{self.group}/{ALL_EVENTS}"

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self._worker.start()
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=15, clean_start=False, properties=props)
        self.client.loop_start()

    def retire(self, idle_s: float = 1.0, timeout_s: float = 120.0) -> None:
        """Retire this collector for good: resume its session, leave the share group, store
        what the broker had queued for it, then end the session.

        Mosquitto 2.0.11 keeps handing a share of `$share/` messages to a member whose
        persistent session is offline; they wait there, not lost, until it returns. A collector
        that is not coming back must be retired like this, or its share is stranded (and merely
        dropping the session would drop those queued events).
        """
        self._retiring = True
        self.start()
        if not self.wait_connected(10):
            raise FleetBrokerError(
                f"mqtt://{self.broker.host}:{self.broker.port}: cannot resume session {self.client_id}"
            )
        self.client.unsubscribe(self.topic)
        deadline, seen = time.monotonic() + timeout_s, -1
        while time.monotonic() < deadline:
            time.sleep(idle_s)
            if self.stats.received == seen and self._queue.empty():
                break
            seen = self.stats.received
        self._stop.set()
        self._worker.join(timeout=30)
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0  # the broker forgets the session on this disconnect
        self.client.disconnect(properties=props)
        self.client.loop_stop()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def stop(self) -> None:
        """Store and acknowledge what has arrived, then disconnect (the session stays)."""
        self._stop.set()
        self._worker.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()

    # -- network thread ------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason, properties):
        try:
            if reason.is_failure:
                self.stats.last_error = f"broker refused: {reason}"
                log.warning("collector %s: %s", self.client_id, self.stats.last_error)
                return
            self._generation += 1
            self.stats.connects += 1
            if not self._retiring:
                client.subscribe([(self.topic, 1), (ALL_STATUS, 0)])
            self._connected.set()
        except Exception:  # an exception here would kill paho's network thread
            log.exception("collector on_connect")

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        self._connected.clear()

    def _on_message(self, client, userdata, msg):
        try:
            if self._stop.is_set():
                return  # not queued, so never acked: the broker redelivers it to the next session
            if not msg.topic.endswith("/status"):
                self.stats.received += 1
            self._queue.put((self._generation, msg.mid, msg.qos, msg.topic, msg.payload))
        except Exception:
            log.exception("collector on_message")

    # -- worker thread -------------------------------------------------------------
    def _next_batch(self) -> list:
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                if self._stop.is_set():
                    return
                continue
            try:
                self._store_and_ack(batch)
            except Exception:  # unacked, so redelivered later; the worker must live on
                log.exception("collector: batch failed")

    def _store_and_ack(self, batch: list) -> None:
        rows, now_s = [], time.time()
        births = [m for m in batch if m[3].endswith("/status")]
        if births:
            batch = [m for m in batch if not m[3].endswith("/status")]
            self._record_births(births, now_s)
        for _, _, _, topic, payload in batch:
            try:
                rows.append(self._row(topic, payload, now_s))
            except (ValueError, TypeError) as exc:  # malformed: acked and counted, never retried forever
                self.stats.rejected += 1
                log.warning("collector: dropped a bad message on %s: %s", topic, exc)
            except IdentityMismatch as exc:  # acked and counted, never stored
                self.stats.rejected += 1
                self.stats.mismatched += 1
                if exc.key not in self._mismatch_logged:
                    self._mismatch_logged.add(exc.key)
                    log.warning(
                        "collector: rejected %s (further mismatches from this station are counted, not logged)", exc
                    )
        self._store_with_retry(rows)
        self._ack(batch)

    @staticmethod
    def _row(topic: str, payload: bytes, now_s: float) -> tuple:
        """The store row of one message; the station and site are the topic's, which the
        broker authorised, never the payload's."""
        parsed = parse(topic)
        if parsed is None or parsed[2] != "event":
            raise ValueError("not a station event topic")
        site, station, _ = parsed
        event = json.loads(payload)
        if isinstance(event, dict):
            for key, authorised in (("station", station), ("site", site)):
                if key in event and event[key] != authorised:
                    raise IdentityMismatch(
                        (site, station), f"an event on {topic} whose payload says {key} {str(event[key])[:64]!r}"
                    )
        return event_row(site, event, now_s)

    def _record_births(self, messages: list, now_s: float) -> None:
        """The `stations` rows of `status` births (QoS 0: never acked; the retained birth
        comes again at the next connect, so a store error is logged, not retried)."""
        rows = []
        for _, _, _, topic, payload in messages:
            parsed = parse(topic)
            if parsed is None or parsed[2] != "status":
                continue
            try:
                row = station_row(parsed[0], parsed[1], json.loads(payload), now_s)
            except (ValueError, UnicodeDecodeError, RecursionError):
                continue  # a plain "offline" will, or junk: nothing to record
            if row is not None:
                rows.append(row)
        try:
            self.store.upsert_stations(rows)
            self.stats.births += len(rows)
        except FleetStoreError as exc:
            self.stats.store_errors += 1
            self.stats.last_error = str(exc)
            log.error("%s", exc)

    def _store_with_retry(self, rows: list) -> None:
        delay_s = 0.2
        while True:
            try:
                added = self.store.insert_many(rows)
                self.stats.stored += added
                self.stats.duplicates += len(rows) - added
                return
            except FleetStoreError as exc:
                # Not acknowledged, so not lost: keep trying; the broker keeps the messages.
                self.stats.store_errors += 1
                self.stats.last_error = str(exc)
                if self._stop.is_set():
                    raise  # stopping: leave them unacked for the broker to redeliver
                log.error("%s (retrying in %.1f s)", exc, delay_s)
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)

    def _ack(self, batch: list) -> None:
        generation = self._generation
        for gen, mid, qos, _, _ in batch:
            if gen == generation and qos > 0:
                if self.client.ack(mid, qos) == mqtt.MQTT_ERR_SUCCESS:
                    self.stats.acked += 1
