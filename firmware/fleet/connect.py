"""Broker URLs, topic parsing and paho client construction shared by the fleet tools.

A broker URL is `mqtt://[user[:password]@]host[:port]` or `mqtts://...` (TLS, port 8883 by
default). Station topics are `hs/<site>/<station>/<kind>` (SPEC section 5).
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from ..errors import BrokerError

TOPIC_ROOT = "hs"


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool = False
    username: str = ""
    password: str = ""


def parse_broker_url(url: str) -> BrokerUrl:
    """Parse an mqtt:// or mqtts:// URL; raise BrokerError naming the URL if it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise BrokerError(f"{url!r}: not an mqtt://host:port or mqtts://host:port URL")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise BrokerError(f"{url!r}: bad port") from None
    return BrokerUrl(parts.hostname, port, tls, unquote(parts.username or ""), unquote(parts.password or ""))


def split_topic(topic: str) -> tuple[str, str, str] | None:
    """`hs/<site>/<station>/<kind...>` -> (site, station, kind), or None for other topics."""
    parts = topic.split("/", 3)
    if len(parts) < 4 or parts[0] != TOPIC_ROOT:
        return None
    return parts[1], parts[2], parts[3]


def make_client(client_id: str = "", *, v5: bool = True, clean_start: bool = True,
                manual_ack: bool = False, broker: BrokerUrl | None = None,
                ca_file: str = "", cert_file: str = "", key_file: str = "") -> mqtt.Client:
    """A paho 2.x client with credentials and TLS taken from the URL and files."""
    protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    kwargs = {"client_id": client_id, "protocol": protocol, "manual_ack": manual_ack}
    if not v5:
        kwargs["clean_session"] = clean_start
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
    if broker is not None:
        if broker.username:
            client.username_pw_set(broker.username, broker.password or None)
        if broker.tls:
            client.tls_set(ca_certs=ca_file or None, certfile=cert_file or None,
                           keyfile=key_file or None, cert_reqs=ssl.CERT_REQUIRED)
    return client


def connect_blocking(client: mqtt.Client, broker: BrokerUrl, timeout_s: float = 5.0, **connect_kwargs) -> None:
    """Connect and start the network loop; raise BrokerError if no CONNACK within timeout_s."""
    done = threading.Event()
    result = {}
    previous = client.on_connect

    def on_connect(c, userdata, flags, reason, properties):
        result["reason"] = reason
        done.set()
        if previous is not None:
            previous(c, userdata, flags, reason, properties)

    client.on_connect = on_connect
    try:
        client.connect(broker.host, broker.port, **connect_kwargs)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"mqtt://{broker.host}:{broker.port}: cannot connect: {exc}") from None
    client.loop_start()
    if not done.wait(timeout_s):
        client.loop_stop()
        raise BrokerError(f"mqtt://{broker.host}:{broker.port}: no answer within {timeout_s:g} s")
    reason = result["reason"]
    client.on_connect = previous
    if reason.is_failure:
        client.loop_stop()
        raise BrokerError(f"mqtt://{broker.host}:{broker.port}: refused: {reason}")


def wait_until(predicate, timeout_s: float, poll_s: float = 0.02) -> bool:
    """Poll `predicate` until it is true or timeout_s passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
