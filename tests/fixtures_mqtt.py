"""A real mosquitto for the MQTT tests: started on a free loopback port in a tmp dir.

`mqtt_broker_factory(users=..., acl=..., tls=..., persistence=...)` writes a config (and a
password file via `mosquitto_passwd`, a TLS CA and server certificate made with the
`cryptography` package, an ACL file), starts `/usr/sbin/mosquitto` and returns a `Broker`
with `stop()`/`start()` (same port) to simulate an outage. Teardown kills every broker.
`Collector` is a plain paho subscriber that records what the broker delivers.
tools/bench-mqtt reuses `Broker` and `Collector`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed test CA: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def make_cert(directory: Path, name: str, ca: tuple[Path, Path], hosts=("127.0.0.1", "localhost")) -> tuple[Path, Path]:
    """A server (or client) certificate signed by `ca`, valid for `hosts`: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert = x509.load_pem_x509_certificate(ca[0].read_bytes())
    ca_key = serialization.load_pem_private_key(ca[1].read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h) for h in hosts]
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


class Broker:
    """One mosquitto process with a generated config; `url` is what a station connects to."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict | None = None,
        acl: str | None = None,
        tls: dict | None = None,
        persistence: bool = False,
        extra: tuple[str, ...] | str = (),
        passwd_file: Path | None = None,
        acl_file: Path | None = None,
        port: int | None = None,
        max_queued: int = 100000,
    ):
        """`users`/`acl` are written here; `passwd_file`/`acl_file` are ready-made ones (e.g.
        from provisioning). `extra` lines go after the listener, so listener options apply."""
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls = tls
        self.proc: subprocess.Popen | None = None
        lines = [
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if (users or passwd_file) else 'true'}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            f"max_queued_messages {max_queued}",
            "max_inflight_messages 100",
            f"log_dest file {self.dir}/mosquitto.log",
            "log_type all",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to user mosquitto and cannot read the tmp files
        if users:
            pw = self.dir / "passwd"
            pw.touch(mode=0o600)
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True, capture_output=True)
            lines.append(f"password_file {pw}")
        if passwd_file is not None:
            lines.append(f"password_file {passwd_file}")
        if acl is not None:
            (self.dir / "acl").write_text(acl)
            lines.append(f"acl_file {self.dir}/acl")
        if acl_file is not None:
            lines.append(f"acl_file {acl_file}")
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        lines += extra.splitlines() if isinstance(extra, str) else list(extra)  # e.g. require_certificate true
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "Broker":
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr.log", "ab"),
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.dir / 'stderr.log').read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        """Stop like an outage (SIGTERM; a persistent broker saves its sessions)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_s: float = 0.5) -> "Broker":
        """Stop, stay down `down_s`, start again on the same port (sessions kept if persistent)."""
        self.stop()
        time.sleep(down_s)
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP: the TCP connections stay up but nothing is read or acknowledged (a network cut)."""
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log(self) -> str:
        path = self.dir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Collector:
    """A paho subscriber recording (topic, payload, retain) of everything it receives."""

    def __init__(
        self,
        broker: Broker,
        topic: str = "hs/#",
        *,
        client_id: str | None = None,
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca: Path | None = None,
        cert: tuple[Path, Path] | None = None,
    ):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"collector-{os.getpid()}-{id(self)}",
            clean_session=not persistent,
        )
        if username:
            self.client.username_pw_set(username, password)
        if ca:
            self.client.tls_set(ca_certs=str(ca), certfile=cert and str(cert[0]), keyfile=cert and str(cert[1]))
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe(topic, 1), None)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", broker.port, 30)
        self.client.loop_start()
        assert self.subscribed.wait(10), "collector could not subscribe"

    def _on_message(self, _c, _u, msg):
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def payloads(self, suffix: str = "/event") -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p, _r in self.messages if t.endswith(suffix) and p]

    def wait_for(self, predicate, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_broker_factory(tmp_path):
    """Start brokers on demand: mqtt_broker_factory(users=..., acl=..., tls=..., persistence=...)."""
    brokers: list[Broker] = []

    def start(name: str = "broker", **options) -> Broker:
        broker = Broker(tmp_path / name, **options).start()
        brokers.append(broker)
        return broker

    yield start
    for broker in brokers:
        broker.kill()


@pytest.fixture
def mqtt_broker(mqtt_broker_factory) -> Broker:
    """A plain anonymous broker."""
    return mqtt_broker_factory()


@pytest.fixture
def mqtt_ca(tmp_path) -> dict:
    """A test CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    d = tmp_path / "pki"
    d.mkdir()
    ca = make_ca(d, "test-ca")
    cert, key = make_cert(d, "server", ca)
    wrong, _ = make_ca(d, "wrong-ca")
    return {"ca": ca[0], "cert": cert, "key": key, "wrong_ca": wrong, "ca_key": ca[1], "dir": d}


def station_settings(broker_urls, *, station="desk-1", site="site-1", state_dir="var/state", **mqtt):
    """Settings for a station publishing to `broker_urls` (a URL or a list), with fast reconnects."""
    from firmware.config.settings import Settings

    urls = [broker_urls] if isinstance(broker_urls, str) else list(broker_urls)
    options = {"brokers": urls, "reconnect_max_s": 2, "telemetry_s": 3600.0, **mqtt}
    return Settings().replace(station={"id": station, "site": site, "state_dir": str(state_dir)}, mqtt=options)


def wait_until(predicate, timeout_s: float = 20.0, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
