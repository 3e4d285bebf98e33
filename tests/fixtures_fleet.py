"""Fixtures for the fleet tools: a real Mosquitto and a real PostgreSQL on free loopback ports.

`fleet_broker_factory(...)` starts a persistent `mosquitto` (fixtures_mqtt.Broker, optionally with
a provisioned password file and ACL) that can restart on the same port; `fleet_postgres` starts a
throw-away PostgreSQL cluster (initdb as the `postgres` user when the tests run as root) and
yields its URL. Nothing is faked.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from glob import glob
from pathlib import Path

import pytest
from fixtures_mqtt import Broker, free_port

FLEET = [sys.executable, "-m", "headset_fleet.cli"]  # the fleet tools' CLI, as a user runs it


@pytest.fixture
def fleet_broker_factory(tmp_path):
    """Persistent brokers (sessions survive a restart), optionally with the provisioned
    password file and ACL: fleet_broker_factory(passwd=..., acl=..., extra=..., port=...)."""
    brokers: list[Broker] = []

    def make(
        *, passwd: Path | None = None, acl: Path | None = None, extra: str = "", port: int | None = None
    ) -> Broker:
        broker = Broker(
            tmp_path / f"broker{len(brokers)}",
            passwd_file=passwd,
            acl_file=acl,
            extra=extra,
            port=port,
            persistence=True,
            max_queued=0,
        ).start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def fleet_broker(fleet_broker_factory) -> Broker:
    return fleet_broker_factory()


def _wait_port(port: int, timeout_s: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = "".join(p.read_text(errors="replace") for p in (log, log.with_suffix(".stderr")) if p.exists())
            raise RuntimeError(f"exited with {proc.returncode}: {text[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"not listening on {port} after {timeout_s} s")


def _pg_bindir() -> Path | None:
    found = sorted(glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def fleet_postgres():
    """A PostgreSQL cluster for the session; yields a postgresql:// URL."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin "
            "(tools/dev setup installs the postgresql package)"
        )
    root = Path(tempfile.mkdtemp(prefix="hs-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: dict = {}
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        user = pwd.getpwnam("postgres")
        for p in (root, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
        as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": str(root)}
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "hs", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        **as_user,
    )
    port = free_port()
    log = root / "postgres.log"
    logfh = open(log, "wb")
    proc = subprocess.Popen(
        [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-k",
            str(sock),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-c",
            "fsync=off",
        ],
        stdout=logfh,
        stderr=subprocess.STDOUT,
        **as_user,
    )
    try:
        _wait_port(port, 30, proc, log)
        import psycopg

        for _ in range(100):
            try:
                with psycopg.connect(f"postgresql://hs@127.0.0.1:{port}/postgres", autocommit=True) as conn:
                    conn.execute("CREATE DATABASE fleet")
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        yield f"postgresql://hs@127.0.0.1:{port}/fleet"
    finally:
        proc.send_signal(signal.SIGINT)  # "fast" shutdown: do not wait for clients to leave
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        logfh.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fleet_pg_url(fleet_postgres):
    """The session's PostgreSQL database, emptied for this test."""
    import psycopg

    with psycopg.connect(fleet_postgres, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS events, stations")
    return fleet_postgres
