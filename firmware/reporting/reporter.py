"""MQTT reporting: one station's events, state, status and telemetry over paho-mqtt 2.x,
and its remote commands.

Threads: paho's network thread (`loop_start`) runs the callbacks, each guarded so an
exception is logged and never kills the thread; the sender thread (`firmware.reporting.sender.Sender`,
which owns its wake event, acknowledgement queue, reconnect flag and in-flight map) is the
only one that hands outbox rows to paho and deletes acknowledged ones; the callbacks only
call its methods (`on_ack`, `on_connected`, `on_disconnected`, `wake`, `stop`). The command
thread runs remote commands so a slow LED test never stalls the network thread.

`sink()` commits an event to the outbox (firmware.reporting.outbox) before anything else sees it;
delivery is at-least-once, first copies in `seq` order, consumers deduplicate by `id`.
On connect: the birth record on `status` (retained, with `bdSeq`), the current `state`,
then the subscriptions (in `on_connect`, so they survive reconnects).
Every status record (birth, will, stop) and the state carry the station's `desk` and `agent`
(null when none; `set_agent` changes the agent), status also `site` and `tz`: additive fields.

Failover: on a failed connect the next URL of `mqtt.brokers` is tried (all must share the
scheme, since TLS is set once per client). Broker trouble is reported once per outage
through `on_fault("mqtt", detail, cleared)`; outbox cap trouble as `("storage", ...)`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firmware import __version__
from firmware.config.settings import Settings
from firmware.errors import ConfigError
from firmware.protocol.brokers import configure_client, describe_failure, parse_broker
from firmware.protocol.envelope import Event, iso_utc, to_json
from firmware.protocol.topics import QOS_COMMAND, QOS_STATE, QOS_STATUS, Topics
from firmware.reporting.outbox import Outbox
from firmware.reporting.sender import Sender

CAPABILITIES = (
    "events",
    "state",
    "telemetry",
    "cmd:ping",
    "cmd:get-config",
    "cmd:set-config",
    "cmd:led-test",
    "cmd:restart",
    "cmd:agent",
)


def _guarded(fn):
    """A paho callback that logs its exception instead of killing the network thread."""

    @functools.wraps(fn)
    def wrapper(self, *args):
        try:
            return fn(self, *args)
        except Exception:
            self.log.exception("mqtt: %s failed", fn.__name__)

    return wrapper


class Reporter:
    """Publishes one station's events, state, status and telemetry; receives its commands."""

    def __init__(
        self,
        settings: Settings,
        outbox: Outbox,
        *,
        profile_name: str,
        on_command=None,
        log: logging.Logger | None = None,
        on_fault=None,
        telemetry=None,
    ):
        m = settings.mqtt
        self.log = log or logging.getLogger(__name__)
        if not m.brokers:
            raise ConfigError("mqtt.brokers: no broker configured; publishing needs at least one")
        self.brokers = [parse_broker(u) for u in m.brokers]
        if len({tls for tls, _h, _p in self.brokers}) > 1:
            raise ConfigError("mqtt.brokers: mixes mqtt:// and mqtts://; use one scheme for all brokers")
        self.settings, self.outbox, self.profile_name = settings, outbox, profile_name
        self.topics = Topics(settings.station.site, settings.station.id)
        self.on_command = on_command.handle if hasattr(on_command, "handle") else on_command
        self.on_fault = on_fault  # (component, detail, cleared) -> None; the station emits the events
        self.telemetry = telemetry  # () -> dict of the service's audio health, sampled every mqtt.telemetry_s
        if outbox.on_fault is None:
            outbox.on_fault = lambda component, detail, cleared: self._fault(detail, cleared, component)
        self.boot_id = uuid.uuid4().hex
        self.connected = False
        self.bdseq = 0
        self._broker_index = 0
        self._fault_active = False
        self._refused = False
        self._stopping = False
        self._state_payload: bytes | None = None
        self._state: dict | None = None
        self.agent: str | None = settings.station.agent or None  # the agent at the desk; set_agent changes it
        self._commands: queue.Queue = queue.Queue(maxsize=64)
        self._threads: list[threading.Thread] = []
        self._cpu = (time.monotonic(), time.process_time())
        self.client = self._make_client(m)
        self.sender = Sender(
            self.client,
            outbox,
            self.topics,
            m,
            on_telemetry_due=self._telemetry_due,
            on_fault=lambda component, detail, cleared: self._fault(detail, cleared, component),
        )

    def _make_client(self, m) -> mqtt.Client:
        st = self.settings.station
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=m.client_id or f"hs-{st.site}-{st.id}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        client.reconnect_delay_set(1, m.reconnect_max_s)
        client.max_inflight_messages_set(m.inflight)
        client.max_queued_messages_set(0)  # the outbox, not paho's memory, bounds the backlog
        configure_client(client, m, st.id, tls=self.brokers[0][0], check_files=True)
        client.will_set(self.topics.status, self._status("offline", "will"), QOS_STATUS, retain=True)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # --- public API --------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background and start sending; returns at once."""
        _tls, host, port = self.brokers[self._broker_index]
        self.client.connect_async(host, port, self.settings.mqtt.keepalive_s)
        self.client.loop_start()
        self.sender.start()
        thread = threading.Thread(target=self._command_worker, name="mqtt-commands", daemon=True)
        thread.start()
        self._threads.append(thread)

    def sink(self, event: Event) -> None:
        """EmitFn: commit the event to the outbox (durable on return), then wake the sender."""
        self.outbox.put(event)
        self.sender.wake()

    def publish_state(self, state: dict) -> None:
        """Retained current state, with the station's desk and agent; re-published on every connect."""
        self._state = dict(state)
        self._state_payload = to_json({**state, **self._identity()}).encode()
        if self.connected:
            self.client.publish(self.topics.state, self._state_payload, QOS_STATE, retain=True)

    def set_agent(self, agent: str | None) -> None:
        """A new agent at the desk (None = logged out): the retained status and state say so now.
        Call it from the thread that calls publish_state (the service's rules loop)."""
        self.agent = agent or None
        if self._state is not None:
            self.publish_state(self._state)
        if self.connected:
            self.client.publish(self.topics.status, self._status("online", "agent"), QOS_STATUS, retain=True)

    def publish_telemetry(self, data: dict) -> None:
        """Queue one telemetry record (through the outbox; the oldest is dropped first when full)."""
        record = {"ts": iso_utc(time.time()), "station": self.settings.station.id, **data, **self._health()}
        self.outbox.put_telemetry(record)
        self.sender.wake()

    def _telemetry_due(self) -> None:
        # On the sender thread, every mqtt.telemetry_s.
        self.publish_telemetry(self.telemetry() if self.telemetry else {})

    def wait_drained(self, timeout_s: float) -> bool:
        """True once every queued row has been acknowledged (none held in memory either), False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.outbox.depth > 0 or self.outbox.held:
            if time.monotonic() >= deadline:
                return False
            self.sender.wake()
            time.sleep(0.02)
        return True

    def stop(self, clean: bool = True, timeout_s: float = 5.0) -> None:
        """clean: drain (up to timeout_s), publish `offline`, disconnect. Not clean: drop the link
        without DISCONNECT, so the broker publishes the Last Will. Safe to call twice."""
        if self._stopping:
            return
        if clean and self.connected:
            self.wait_drained(timeout_s)
        self._stopping = True
        self.sender.stop()  # nothing new goes out after the offline status
        if clean and self.connected:
            try:
                info = self.client.publish(self.topics.status, self._status("offline", "stop"), QOS_STATUS, retain=True)
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError) as exc:
                self.log.warning("mqtt: could not publish offline status before stopping (%s)", exc)
            self.client.disconnect()
        self._commands.put(None)
        for thread in self._threads:
            thread.join(timeout=5.0)
        self.client.loop_stop()
        sock = self.client.socket()
        if not clean and sock is not None:
            sock.close()
        self.connected = False

    @property
    def depth(self) -> int:
        return self.outbox.depth

    # --- paho callbacks (network thread) -----------------------------------------------------
    @_guarded
    def _on_pre_connect(self, client, _userdata):
        # A new session number for every attempt: the will registered now carries it.
        self.bdseq = self.outbox.next_session()
        client.will_set(self.topics.status, self._status("offline", "will"), QOS_STATUS, retain=True)

    @_guarded
    def _on_connect(self, client, _userdata, _flags, reason_code, _properties):
        url = self._url()
        if reason_code.is_failure:
            self._refused = True
            self._fault(f"{url}: broker refused the connection ({reason_code})")
            return
        # Birth before subscribing, so the retained status we get back is this session's own.
        client.publish(self.topics.status, self._status("online", "birth"), QOS_STATUS, retain=True)
        if self._state_payload is not None:
            client.publish(self.topics.state, self._state_payload, QOS_STATE, retain=True)
        client.subscribe([(self.topics.commands, QOS_COMMAND), (self.topics.status, QOS_STATUS)])
        self.connected = True
        self.sender.on_connected()
        self.log.info("mqtt: connected to %s (bdSeq %d)", url, self.bdseq)
        self._fault(f"connected to {url}", cleared=True)

    @_guarded
    def _on_connect_fail(self, client, _userdata):
        exc = sys.exc_info()[1]  # paho calls this inside its `except OSError:` block
        self._fault(f"{self._url()}: {describe_failure(exc)}")
        self._next_broker(client)

    @_guarded
    def _on_disconnect(self, client, _userdata, _flags, reason_code, _properties):
        self.connected = False
        self.sender.on_disconnected()
        if self._stopping:
            return
        why = "" if str(reason_code) == "Unspecified error" else f" ({reason_code})"  # 3.1.1 has no reason
        self._fault(f"{self._url()}: connection lost{why}")
        if self._refused:
            self._refused = False
            self._next_broker(client)

    @_guarded
    def _on_publish(self, _client, _userdata, mid, _reason_code, _properties):
        # Called with paho's message lock held, maybe before publish() returned: hand the mid
        # to the sender thread, which owns the in-flight map; never block here.
        self.sender.on_ack(mid)

    @_guarded
    def _on_message(self, client, _userdata, msg):
        if msg.topic == self.topics.status:
            self._check_status(client, msg.payload)
            return
        name = self.topics.command_name(msg.topic)
        if name is None:
            return
        if msg.retain:  # a retained command would run again at every reconnect
            self.log.warning("mqtt: ignoring retained command %s", msg.topic)
            return
        try:
            self._commands.put_nowait((name, bytes(msg.payload)))
        except queue.Full:
            self._reply(name, {"ok": False, "cmd": name, "id": None, "error": "station busy: too many commands queued"})

    def _check_status(self, client, payload: bytes) -> None:
        # A late will of an older session overwrote our retained birth: publish it again.
        try:
            status = json.loads(payload)
        except (ValueError, RecursionError):
            status = {}
        if not isinstance(status, dict):  # JSON, but not ours (a peer on a broker without ACLs)
            status = {}
        if (
            self.connected
            and not self._stopping
            and (status.get("status") != "online" or status.get("bdSeq") != self.bdseq)
        ):
            client.publish(self.topics.status, self._status("online", "rebirth"), QOS_STATUS, retain=True)

    # --- helpers -----------------------------------------------------------------------------
    def _url(self) -> str:
        tls, host, port = self.brokers[self._broker_index]
        return f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"

    def _next_broker(self, client) -> None:
        if len(self.brokers) > 1 and not self._stopping:
            self._broker_index = (self._broker_index + 1) % len(self.brokers)
            _tls, host, port = self.brokers[self._broker_index]
            client.connect_async(host, port, self.settings.mqtt.keepalive_s)  # used by paho's next retry
            self.log.info("mqtt: failing over to %s", self._url())

    def _fault(self, detail: str, cleared: bool = False, component: str = "mqtt") -> None:
        if component == "mqtt":
            if cleared != self._fault_active:  # one fault per outage, one clear per recovery
                if not cleared:
                    self.log.warning("mqtt: %s", detail)
                return
            self._fault_active = not cleared
        (self.log.info if cleared else self.log.error)("%s: %s", component, detail)
        if self.on_fault is not None:
            try:
                self.on_fault(component, detail, cleared)
            except Exception:
                self.log.exception("on_fault callback failed")

    def _status(self, status: str, reason: str) -> bytes:
        record = {
            "status": status,
            "bdSeq": self.bdseq,
            "boot_id": self.boot_id,
            "reason": reason,
            "ts": iso_utc(time.time()),
            "station": self.settings.station.id,
            **self._identity(),
            "site": self.settings.station.site,
            "tz": self.settings.station.tz or None,
        }
        if status == "online":
            record.update(version=__version__, profile=self.profile_name, capabilities=list(CAPABILITIES))
        return json.dumps(record, separators=(",", ":")).encode()

    def _identity(self) -> dict:
        return {"desk": self.settings.station.desk or None, "agent": self.agent}

    def _health(self) -> dict:
        now, cpu = time.monotonic(), time.process_time()
        last_now, last_cpu = self._cpu
        self._cpu = (now, cpu)
        return {
            "cpu_pct": round(100.0 * (cpu - last_cpu) / max(now - last_now, 1e-6), 1),
            "load_1m": round(os.getloadavg()[0], 2),
            "outbox_depth": self.outbox.depth,
            "outbox_events": self.outbox.event_depth,
            "connected": self.connected,
        }

    def _reply(self, name: str, reply: dict) -> None:
        payload = json.dumps(reply, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        self.client.publish(self.topics.reply(name), payload, QOS_COMMAND)

    def _command_worker(self) -> None:
        while (item := self._commands.get()) is not None:
            name, payload = item
            try:
                if self.on_command is None:
                    reply = {"ok": False, "cmd": name, "id": None, "error": "commands are not enabled on this station"}
                else:
                    reply = self.on_command(name, payload)
                self._reply(name, reply)
            except Exception:
                self.log.exception("mqtt: command %s failed", name)
