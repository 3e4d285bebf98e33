"""A service's broker login: URL, user, password and TLS files, without the password in the URL.

The fleet tools (collect, monitor, loadgen, command) and `headset-station command` log in as a
service user (`_collector`, `_monitor`, `_operator`, ...). The user goes in the URL
(`mqtts://_operator@broker:8883`); the password comes, first found, from `--password-file FILE`
(first line; refused if group or others may read it, as the station's mqtt.password_file),
the environment variable HS_MQTT_PASSWORD, or the URL itself (`user:password@`, visible in
`ps` and shell history: for tests only).

`add_login_arguments(parser)` adds `--password-file`, `--ca-file`, `--cert-file` and
`--key-file`; `login_from_args(args)` turns them and `args.broker` into a `BrokerLogin`;
`make_client(login, client_id)` returns a paho 2 client set up with it.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from firmware.errors import ConfigError, InputError
from firmware.protocol.brokers import PasswordFileError, parse_broker, read_first_line

PASSWORD_ENV = "HS_MQTT_PASSWORD"


@dataclass(frozen=True)
class BrokerLogin:
    """Where and as whom to connect; `password` is never printed (repr hides it)."""

    host: str
    port: int
    tls: bool = False
    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def __repr__(self) -> str:
        return f"BrokerLogin({self.url!r}, user={self.username!r})"

    @property
    def url(self) -> str:
        """The URL without credentials, for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


def read_password_file(path: str, option: str = "--password-file") -> str:
    """The first line of a password file only its owner may read (mode 0600 or 0400)."""
    try:
        password = read_first_line(path)
    except PasswordFileError as exc:
        raise InputError(f"{option}: {exc}") from None
    if not password:
        raise InputError(f"{option}: {path} is empty (the password is its first line)")
    return password


def parse_login(
    url: str, *, password_file: str = "", ca_file: str = "", cert_file: str = "", key_file: str = "", environ=None
) -> BrokerLogin:
    """A BrokerLogin from a broker URL and the optional files; InputError (exit 2) naming the
    URL or option on anything wrong."""
    environ = os.environ if environ is None else environ
    try:
        tls, host, port = parse_broker(url)
        parts = urlsplit(url)
        username, url_password = unquote(parts.username or ""), unquote(parts.password or "")
    except (ConfigError, ValueError):
        raise InputError(f"--broker: {url!r} is not an mqtt://[USER@]host[:port] or mqtts://... URL") from None
    if password_file:
        password = read_password_file(password_file)
    else:
        password = environ.get(PASSWORD_ENV, "") or url_password
    if password and not username:
        raise InputError(
            f"--broker: {url!r} names no user: give it as mqtt[s]://USER@host "
            "(the password comes from --password-file or " + PASSWORD_ENV + ")"
        )
    for option, path in (("--ca-file", ca_file), ("--cert-file", cert_file), ("--key-file", key_file)):
        if path and not Path(path).is_file():
            raise InputError(f"{option}: {path} does not exist or is not a file")
    if bool(cert_file) != bool(key_file):
        raise InputError("--cert-file: a client certificate needs --key-file too (and vice versa)")
    if (ca_file or cert_file) and not tls:
        raise InputError(f"--ca-file/--cert-file: {url!r} is not mqtts://, so no TLS files are used")
    return BrokerLogin(host, port, tls, username, password, ca_file, cert_file, key_file)


def add_login_arguments(parser) -> None:
    """--password-file and the TLS files, for any subcommand that has --broker."""
    parser.add_argument(
        "--password-file",
        default="",
        metavar="FILE",
        help=f"the broker user's password (first line, mode 0600); else ${PASSWORD_ENV}",
    )
    parser.add_argument("--ca-file", default="", metavar="FILE", help="CA bundle for mqtts://")
    parser.add_argument("--cert-file", default="", metavar="FILE", help="client certificate for mqtts://")
    parser.add_argument("--key-file", default="", metavar="FILE", help="client key for mqtts://")


def login_from_args(args) -> BrokerLogin:
    return parse_login(
        args.broker,
        password_file=args.password_file,
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
    )


def make_client(login: BrokerLogin | None, client_id: str = "", *, manual_ack: bool = False, protocol=None):
    """A paho 2 client with the login's credentials and TLS files.

    A broker set up as config/mosquitto asks (`use_username_as_clientid true`) replaces the
    client id with the user name, so one user is one session: run one process per user."""
    import paho.mqtt.client as mqtt  # only the commands that connect need paho

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if protocol is None else protocol,
        manual_ack=manual_ack,
    )
    if login is not None:
        if login.username:
            client.username_pw_set(login.username, login.password or None)
        if login.tls:
            client.tls_set(
                ca_certs=login.ca_file or None,
                certfile=login.cert_file or None,
                keyfile=login.key_file or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
    return client
