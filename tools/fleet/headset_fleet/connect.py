"""Broker URLs and paho client construction shared by the fleet tools.

A broker URL is `mqtt://[user[:password]@]host[:port]` or `mqtts://...` (TLS, port 8883 by
default): the station's URL (firmware.protocol.brokers.parse_broker) plus optional
credentials. `BrokerUrl` is firmware.protocol.login's `BrokerLogin`: the commands resolve
`--password-file` / HS_MQTT_PASSWORD and the TLS files into it once (`login_from_args`),
and every tool connects with what it carries.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

from firmware.errors import InputError
from firmware.protocol import login as _login
from firmware.protocol.login import BrokerLogin as BrokerUrl  # re-exported: the tools' name for it
from headset_fleet.errors import FleetBrokerError, FleetInputError


def parse_broker_url(url: str | BrokerUrl) -> BrokerUrl:
    """Parse an mqtt:// or mqtts:// URL (a BrokerUrl passes through, so a command can hand a
    resolved login to a tool); raise FleetInputError (exit 2) naming the URL if it is not one."""
    if isinstance(url, BrokerUrl):
        return url
    try:
        return _login.parse_login(url, environ={})
    except InputError as exc:
        raise FleetInputError(str(exc)) from None


def make_client(
    client_id: str = "",
    *,
    manual_ack: bool = False,
    broker: BrokerUrl | None = None,
    ca_file: str = "",
    cert_file: str = "",
    key_file: str = "",
) -> mqtt.Client:
    """A paho 2.x MQTT 5 client with credentials and TLS taken from the login (the files given
    here win over the login's)."""
    if broker is not None and (ca_file or cert_file or key_file):
        broker = BrokerUrl(
            broker.host,
            broker.port,
            broker.tls,
            broker.username,
            broker.password,
            ca_file or broker.ca_file,
            cert_file or broker.cert_file,
            key_file or broker.key_file,
        )
    return _login.make_client(broker, client_id, manual_ack=manual_ack)


def connect_blocking(client: mqtt.Client, broker: BrokerUrl, timeout_s: float = 5.0, **connect_kwargs) -> None:
    """Connect and start the network loop; raise FleetBrokerError if no CONNACK within timeout_s."""
    done = threading.Event()
    result = {}
    previous: Callable[..., None] | None = client.on_connect  # a VERSION2 on_connect, when one is set

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
