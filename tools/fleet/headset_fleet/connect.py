"""Broker URLs and paho client construction shared by the fleet tools.

A broker URL is `mqtt://[user[:password]@]host[:port]` or `mqtts://...` (TLS, port 8883 by
default): the station's URL (firmware.brokers.parse_broker) plus optional credentials.
Station topic names come from firmware.topics.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from firmware.errors import ConfigError
from firmware.protocol.brokers import parse_broker
from headset_fleet.errors import FleetBrokerError


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool = False
    username: str = ""
    password: str = ""


def parse_broker_url(url: str) -> BrokerUrl:
    """Parse an mqtt:// or mqtts:// URL; raise FleetBrokerError naming the URL if it is not one."""
    try:
        tls, host, port = parse_broker(url)
    except ConfigError:
        raise FleetBrokerError(f"{url!r}: not an mqtt://host:port or mqtts://host:port URL") from None
    parts = urlsplit(url)
    return BrokerUrl(host, port, tls, unquote(parts.username or ""), unquote(parts.password or ""))


def make_client(client_id: str = "", *, manual_ack: bool = False, broker: BrokerUrl | None = None,
                ca_file: str = "", cert_file: str = "", key_file: str = "") -> mqtt.Client:
    """A paho 2.x MQTT 5 client with credentials and TLS taken from the URL and files."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                         manual_ack=manual_ack)
    if broker is not None:
        if broker.username:
            client.username_pw_set(broker.username, broker.password or None)
        if broker.tls:
            client.tls_set(ca_certs=ca_file or None, certfile=cert_file or None,
                           keyfile=key_file or None, cert_reqs=ssl.CERT_REQUIRED)
    return client


def connect_blocking(client: mqtt.Client, broker: BrokerUrl, timeout_s: float = 5.0, **connect_kwargs) -> None:
    """Connect and start the network loop; raise FleetBrokerError if no CONNACK within timeout_s."""
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
        raise FleetBrokerError(f"mqtt://{broker.host}:{broker.port}: cannot connect: {exc}") from None
    client.loop_start()
    if not done.wait(timeout_s):
        client.loop_stop()
        raise FleetBrokerError(f"mqtt://{broker.host}:{broker.port}: no answer within {timeout_s:g} s")
    reason = result["reason"]
    client.on_connect = previous
    if reason.is_failure:
        client.loop_stop()
        raise FleetBrokerError(f"mqtt://{broker.host}:{broker.port}: refused: {reason}")
