"""A dependency-free sd_notify client: READY, STOPPING, RELOADING, STATUS and the watchdog.

systemd passes a unix datagram socket in NOTIFY_SOCKET (a path, or `@name` for the
abstract namespace) and, with `WatchdogSec=`, the period in WATCHDOG_USEC. Outside
systemd (a developer's shell, the tests without a socket) every call is a no-op, so the
service never needs to know how it was started. Modelled on nobodd/systemd.py.
"""

from __future__ import annotations

import os
import socket


class SdNotify:
    """One connection to the service manager; `close()` is safe twice."""

    def __init__(self, address: str | None = None, *, environ=os.environ):
        self._socket = None
        # Taken out of the environment so child processes (paplay, sox) do not talk to systemd.
        self._address = address if address is not None else environ.pop("NOTIFY_SOCKET", None)
        self._watchdog_s = _watchdog_period(environ)
        environ.pop("WATCHDOG_USEC", None)
        environ.pop("WATCHDOG_PID", None)
        addr = self._address
        if not addr or len(addr) < 2 or addr[0] not in "@/":
            return
        if addr[0] == "@":
            addr = "\0" + addr[1:]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(addr)
        except OSError:
            sock.close()
            return
        self._socket = sock

    @property
    def available(self) -> bool:
        return self._socket is not None

    def notify(self, state: str) -> bool:
        """Send one state string; False when there is no manager (never raises)."""
        if self._socket is None:
            return False
        try:
            self._socket.sendall(state.encode("utf-8", "replace"))
            return True
        except OSError:
            return False  # the manager went away; the service itself carries on

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog_ping(self) -> bool:
        return self.notify("WATCHDOG=1")

    def watchdog_period(self) -> float | None:
        """Seconds within which systemd expects a ping, or None without `WatchdogSec=`."""
        return self._watchdog_s

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _watchdog_period(environ) -> float | None:
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = environ.get("WATCHDOG_PID")
    try:
        if pid and int(pid) != os.getpid():
            return None  # meant for another process (we were exec'd by a wrapper)
        period_s = int(usec) / 1e6
    except ValueError:
        return None
    return period_s if period_s > 0 else None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
