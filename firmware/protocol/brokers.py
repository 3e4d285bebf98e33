"""Connecting to brokers: broker URLs, the password file, credentials and TLS on a client,
and why a connect attempt failed.

Used by firmware.publisher and firmware.selftest; kept apart so the checks a technician
meets at start-up (a bad URL, a password file others can read) read as one small module.
"""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path
from urllib.parse import urlsplit

from firmware.errors import ConfigError


def parse_broker(url: str) -> tuple[bool, str, int]:
    """'mqtts://host:8883' -> (tls, host, port)."""
    bad = ConfigError(f"mqtt.brokers: {url!r} is not an mqtt://host[:port] or mqtts://host[:port] URL")
    try:
        parts = urlsplit(url)
        port = parts.port  # both raise ValueError: an unclosed "[::1", a port out of range
    except ValueError:
        raise bad from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise bad
    tls = parts.scheme == "mqtts"
    return tls, parts.hostname, port or (8883 if tls else 1883)


class PasswordFileError(Exception):
    """Why a password file was refused (one line, without the option name)."""


MAX_PASSWORD_FILE_BYTES = 64 * 1024


def read_first_line(path: str) -> str:
    """The first line of a password file that only its owner may read (mode 0600 or 0400).

    Opened with O_NONBLOCK and checked on the open descriptor (no stat-then-open race), so a
    FIFO, a device or a socket is refused at once instead of waiting for a writer.
    PasswordFileError with a one-line reason otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PasswordFileError(f"cannot read {path} ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PasswordFileError(f"{path} is not a regular file")
        if st.st_mode & 0o077:
            raise PasswordFileError(
                f"{path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); run chmod 600 {path}"
            )
        raw = os.read(fd, MAX_PASSWORD_FILE_BYTES)
    except OSError as exc:
        raise PasswordFileError(f"cannot read {path} ({exc.strerror})") from None
    finally:
        os.close(fd)
    try:
        return raw.decode("utf-8").split("\n", 1)[0].rstrip("\r")
    except UnicodeDecodeError:
        raise PasswordFileError(f"{path} is not UTF-8 text") from None


def read_password(path: str) -> str:
    """`mqtt.password_file`'s first line (see `read_first_line`); ConfigError if refused."""
    try:
        return read_first_line(path)
    except PasswordFileError as exc:
        raise ConfigError(f"mqtt.password_file: {exc}") from None


def configure_client(client, m, station_id: str, tls: bool, *, check_files: bool = False) -> None:
    """Credentials and TLS of `mqtt` settings `m` on a paho client (the station's and selftest's).

    check_files: refuse (ConfigError) missing TLS files and a certificate without its key,
    before paho meets them.
    """
    if m.password_file or m.username:
        password = read_password(m.password_file) if m.password_file else None
        client.username_pw_set(m.username or station_id, password)  # convention: username = station id
    if not tls:
        return
    if check_files:
        for key in ("ca_file", "cert_file", "key_file"):
            if getattr(m, key) and not Path(getattr(m, key)).is_file():
                raise ConfigError(f"mqtt.{key}: {getattr(m, key)} does not exist")
        if bool(m.cert_file) != bool(m.key_file):
            raise ConfigError("mqtt.cert_file: a client certificate needs mqtt.key_file too (and vice versa)")
    client.tls_set(
        ca_certs=m.ca_file or None,
        certfile=m.cert_file or None,
        keyfile=m.key_file or None,
        cert_reqs=ssl.CERT_REQUIRED,
    )
    client.tls_insecure_set(m.tls_insecure)


def describe_failure(exc: BaseException | None) -> str:
    """One line saying why a connect attempt failed."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({exc.verify_message}); check mqtt.ca_file"
    if isinstance(exc, ssl.CertificateError):
        return f"TLS host name check failed ({exc})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (broker down or wrong port)"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if exc else "connection failed"
