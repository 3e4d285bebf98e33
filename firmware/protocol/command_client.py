"""Send one command to a station and wait for its reply (the README's commands).

The request goes to `hs/<site>/<station>/cmd/<name>` (QoS 1) with an `id` the station echoes
(firmware/reporting/commands.py); the reply is the first message on `.../cmd/<name>/reply`
carrying that id. Without a site, the station's retained `status` names it. The broker user
is an operator (`_operator`, provisioned with write on `hs/+/+/cmd/+` and read on the replies
and statuses). Both `headset-fleet command` and `headset-station command` run `run(args)`.

Exit codes: 0 the station replied `ok: true`; 1 it replied with an error; 2 bad arguments;
69 no reply (or no site) within the timeout, or the broker refused the login or the command.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import secrets
import sys
import threading
import time

from paho.mqtt.reasoncodes import ReasonCode

from firmware.errors import InputError, StationError
from firmware.protocol.login import BrokerLogin, add_login_arguments, login_from_args, make_client
from firmware.protocol.topics import QOS_COMMAND, ROOT, Topics, parse

log = logging.getLogger(__name__)

MAX_TIMEOUT_S = 3600.0


class CommandFailed(StationError):
    """No reply in time, no such station, or the broker refused: the command may not have run."""

    exit_code = 69  # EX_UNAVAILABLE


def parse_request(text: str | None) -> dict:
    """The command's JSON object (empty = {}); InputError naming the argument otherwise."""
    if text is None or not text.strip():
        return {}
    try:
        request = json.loads(text)
    except ValueError as exc:
        raise InputError(f"JSON: not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError("JSON: nested too deeply") from None
    if not isinstance(request, dict):
        raise InputError(f"JSON: must be a JSON object, got {type(request).__name__}")
    return request


def check_timeout(timeout_s) -> float:
    """A finite timeout in (0, MAX_TIMEOUT_S] from a number or its text; InputError otherwise."""
    try:
        number = math.nan if isinstance(timeout_s, bool) else float(timeout_s)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and 0 < number <= MAX_TIMEOUT_S):
        raise InputError(f"--timeout: {timeout_s!r} must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}")
    return number


class _Session:
    """One connected paho client; messages arrive on a queue read by the caller's thread."""

    def __init__(self, login: BrokerLogin, timeout_s: float):
        self.login = login
        self.messages: queue.Queue = queue.Queue()
        self._connack = threading.Event()
        self._acks: dict[int, list[ReasonCode]] = {}
        self._acked = threading.Condition()
        self._reason: ReasonCode | None = None
        # A broker binding sessions to users replaces this id with the user name anyway.
        self.client = make_client(login, f"hs-command-{secrets.token_hex(4)}")
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, bytes(msg.payload)))
        self.client.on_subscribe = self._on_ack
        self.client.on_publish = self._on_publish
        try:
            self.client.connect(login.host, login.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise CommandFailed(f"{login.url}: cannot connect ({exc})") from None
        self.client.loop_start()
        if not self._connack.wait(timeout_s):
            self.close()
            raise CommandFailed(f"{login.url}: no answer from the broker within {timeout_s:g} s")
        if self._reason is not None and self._reason.is_failure:
            self.close()
            raise CommandFailed(f"{login.url}: the broker refused user {login.username or '(none)'!r}: {self._reason}")

    def _on_connect(self, _c, _u, _flags, reason, _props):
        self._reason = reason
        self._connack.set()

    def _on_ack(self, _c, _u, mid, reasons, _props):
        with self._acked:
            self._acks[mid] = reasons
            self._acked.notify_all()

    def _on_publish(self, _c, _u, mid, reason, _props):
        self._on_ack(_c, _u, mid, [reason], _props)

    def _wait_ack(self, mid: int, deadline: float, what: str) -> None:
        with self._acked:
            while mid not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CommandFailed(f"{self.login.url}: no acknowledgement of the {what} in time")
                self._acked.wait(left)
            bad = [r for r in self._acks.pop(mid) if r.is_failure]
        if bad:
            raise CommandFailed(
                f"{self.login.url}: the broker refused the {what} for user "
                f"{self.login.username!r}: {bad[0]} (check the ACL)"
            )

    def subscribe(self, topic: str, deadline: float) -> None:
        _rc, mid = self.client.subscribe(topic, QOS_COMMAND)
        self._wait_ack(mid, deadline, f"subscription to {topic}")

    def publish(self, topic: str, payload: bytes, deadline: float) -> None:
        info = self.client.publish(topic, payload, QOS_COMMAND)
        self._wait_ack(info.mid, deadline, f"publish to {topic}")

    def next_message(self, deadline: float):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            return self.messages.get(timeout=left)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def find_site(session: _Session, station: str, deadline: float) -> str:
    """The site in the station's retained status topic."""
    session.subscribe(f"{ROOT}/+/{station}/status", deadline)
    while (msg := session.next_message(deadline)) is not None:
        parsed = parse(msg[0])
        if parsed and parsed[1] == station and parsed[2] == "status":
            session.client.unsubscribe(f"{ROOT}/+/{station}/status")
            return parsed[0]
    raise CommandFailed(f"station {station!r}: no retained status on the broker, so its site is unknown; give --site")


def send_command(
    login: BrokerLogin,
    station: str,
    name: str,
    request: dict | None = None,
    *,
    site: str | None = None,
    timeout_s: float = 10.0,
) -> dict:
    """Send `name` with `request` to `station`; return the station's reply dict.

    Raises InputError for bad arguments, CommandFailed if no reply arrives in time."""
    for what, value in (("STATION", station), ("NAME", name), ("--site", site)):
        if value is not None and (not value or any(c in value for c in "/+#\0")):
            raise InputError(f"{what}: {value!r} must be one MQTT topic level (non-empty, no '/', '+' or '#')")
    timeout_s = check_timeout(timeout_s)
    request = dict(request or {})
    request.setdefault("id", f"op-{secrets.token_hex(6)}")
    payload = json.dumps(request, separators=(",", ":")).encode()
    deadline = time.monotonic() + timeout_s
    session = _Session(login, timeout_s)
    try:
        site = site or find_site(session, station, deadline)
        topics = Topics(site, station)
        reply_topic = topics.reply(name)
        session.subscribe(reply_topic, deadline)
        session.publish(f"{topics.base}/cmd/{name}", payload, deadline)
        while (msg := session.next_message(deadline)) is not None:
            if msg[0] != reply_topic:
                continue
            try:
                reply = json.loads(msg[1])
            except (ValueError, RecursionError):
                log.warning("command: ignoring a reply that is not JSON on %s", reply_topic)
                continue
            if isinstance(reply, dict) and reply.get("id") == request["id"]:
                return reply
        raise CommandFailed(
            f"station {station!r} at site {site!r}: no reply to {name!r} within {timeout_s:g} s "
            "(station offline, or its commands are disabled)"
        )
    finally:
        session.close()


def add_arguments(parser) -> None:
    """The `command` subcommand's arguments (both CLIs)."""
    parser.add_argument("station", metavar="STATION")
    parser.add_argument("name", metavar="NAME", help="ping, get-config, set-config, led-test, restart, ...")
    parser.add_argument(
        "json",
        metavar="JSON",
        nargs="?",
        default=None,
        help='the command\'s JSON object, e.g. \'{"set": {"hold_limit_s": 90}}\'',
    )
    parser.add_argument("--broker", required=True, metavar="URL", help="mqtt[s]://USER@host[:port], USER an operator")
    parser.add_argument(
        "--site", default=None, metavar="SITE", help="the station's site (default: from its retained status)"
    )
    parser.add_argument("--timeout", default=10.0, metavar="S", help="seconds to wait for the reply (default 10)")
    add_login_arguments(parser)


def run(args, out=None) -> int:
    """Send the command, print the reply as one JSON line; 0 if it says ok, else 1."""
    out = out or sys.stdout
    request = parse_request(args.json)
    login = login_from_args(args)
    reply = send_command(login, args.station, args.name, request, site=args.site, timeout_s=args.timeout)
    print(json.dumps(reply, ensure_ascii=False, sort_keys=True), file=out)
    return 0 if reply.get("ok") is True else 1
