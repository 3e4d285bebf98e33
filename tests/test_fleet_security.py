"""Fleet security on a real Mosquitto 2.0.11 set up from what `provision` generates: sessions
bound to users (no takeover of a station's or a collector's session), the collector trusting
the topic and not the payload, operator commands, passwords out of URLs, broker file modes
that Mosquitto running as `mosquitto` can read. Collector tests use a real PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fixtures_fleet import FLEET
from fixtures_mqtt import Broker, free_port, wait_until

from firmware.config.settings import settings_from_dict
from firmware.protocol.envelope import EventFactory, MemorySeq, to_json
from firmware.protocol.login import parse_login
from firmware.reporting.commands import CommandHandler
from firmware.reporting.outbox import Outbox
from firmware.reporting.reporter import Reporter
from headset_fleet.collector import Collector
from headset_fleet.provision import provision
from headset_fleet.store import open_store

pytestmark = pytest.mark.integration


def write_inventory(path: Path, port: int, scheme: str = "mqtt") -> Path:
    path.write_text(
        "station_id,site,desk,profile,broker\n"
        f"st-a,s1,D01,hotline-5s,{scheme}://127.0.0.1:{port}\n"
        f"st-b,s1,D02,hotline-5s,{scheme}://127.0.0.1:{port}\n"
    )
    return path


def secret(out: Path, user: str) -> str:
    if user.startswith("_"):
        return (out / "broker" / f"{user[1:]}-password").read_text().strip()
    return (out / "stations" / user / "mqtt-password").read_text().strip()


@pytest.fixture
def provisioned_broker(tmp_path):
    """start(out, port, user=...) runs mosquitto with a main config that only adds persistence
    and logging to provision's broker/headset.conf (its listeners, passwd and ACL)."""
    brokers: list[Broker] = []

    def start(out: Path, port: int, *, user: str | None = None, persistence: bool = True) -> Broker:
        broker = Broker(tmp_path / f"mosq{len(brokers)}", port=port)
        user = user or ("root" if os.geteuid() == 0 else None)
        lines = [
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {broker.dir}/",
            "autosave_interval 1",
            "connection_messages true",
            "log_type all",
            "log_dest stderr" if user == "mosquitto" else f"log_dest file {broker.dir}/mosquitto.log",
            f"include_dir {out / 'broker'}",
        ]
        if user:
            lines.insert(0, f"user {user}")
        (broker.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        brokers.append(broker.start())
        return broker

    yield start
    for broker in brokers:
        broker.kill()


class Client:
    """A paho client logging in as `user`; records what it receives and its disconnects."""

    def __init__(
        self,
        port: int,
        user: str,
        password: str,
        client_id: str,
        *,
        v5: bool = True,
        clean: bool = True,
        will: tuple | None = None,
        subscribe: str | None = None,
    ):
        kw = {"protocol": mqtt.MQTTv5} if v5 else {"protocol": mqtt.MQTTv311, "clean_session": clean}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, **kw)
        self.client.username_pw_set(user, password)
        self.messages: list[tuple[str, bytes]] = []
        self.disconnects = 0
        self.reason = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: setattr(self, "disconnects", self.disconnects + 1)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.subscribe = subscribe
        if will:
            self.client.will_set(*will)
        self.client.connect("127.0.0.1", port, 30, **({"clean_start": clean} if v5 else {}))
        self.client.loop_start()
        assert wait_until(lambda: self.reason is not None, 10), f"no CONNACK for {user}"

    def _on_connect(self, client, _u, _flags, reason, _props):
        self.reason = reason
        if self.subscribe and not reason.is_failure:
            client.subscribe(self.subscribe, 1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_no_station_can_take_another_stations_or_a_collectors_session(tmp_path, provisioned_broker, fleet_pg_url):
    port = free_port()
    out = tmp_path / "out"
    provision(write_inventory(tmp_path / "inv.csv", port), out, collectors=["c1"])
    broker = provisioned_broker(out, port)
    pw_a, pw_b = secret(out, "st-a"), secret(out, "st-b")
    monitor = Client(port, "_monitor", secret(out, "_monitor"), "mon", subscribe="hs/#")

    # station -> station: st-a logs in with its own password but st-b's client id(s).
    b = Client(
        port,
        "st-b",
        pw_b,
        "hs-s1-st-b",
        v5=False,
        will=("hs/s1/st-b/status", b'{"status":"offline","reason":"will"}', 1, True),
    )
    for stolen_id in ("hs-s1-st-b", "st-b"):
        a = Client(port, "st-a", pw_a, stolen_id, v5=False)
        assert not a.reason.is_failure
        time.sleep(0.5)
        assert b.client.is_connected() and b.disconnects == 0, f"st-a took st-b's session with id {stolen_id}"
        a.close()
    assert not [t for t, p in monitor.messages if t == "hs/s1/st-b/status" and b"will" in p]

    # station -> collector: the collector is away with a persistent session and 50 events queued.
    login = parse_login(
        f"mqtt://_collector-c1@127.0.0.1:{port}", password_file=str(out / "broker" / "collector-c1-password")
    )
    collector = Collector(login, open_store(fleet_pg_url), group="g1")
    assert collector.client_id == "_collector-c1"
    collector.start()
    assert collector.wait_connected(10)
    time.sleep(0.5)  # SUBACK
    collector.stop()
    factory = EventFactory("st-a", time.time(), MemorySeq())
    events = [factory.make("hook", i * 0.1, None, state="off" if i % 2 else "on") for i in range(50)]
    a = Client(port, "st-a", pw_a, "st-a", v5=False)
    for e in events:
        a.client.publish("hs/s1/st-a/event", to_json(e), 1).wait_for_publish(5)
    a.close()
    for stolen_id in ("_collector-c1", "hs-collector-g1", ""):
        for v5 in (True, False):  # a clean session under the collector's id would discard its queue
            thief = Client(port, "st-a", pw_a, stolen_id, v5=v5, clean=True)
            time.sleep(0.2)
            thief.close()
    broker.restart()  # the session, saved under the user name, survives a broker restart too
    collector = Collector(login, open_store(fleet_pg_url), group="g1")
    collector.start()
    assert wait_until(lambda: collector.stats.stored == 50, 20), collector.stats
    collector.stop()
    monitor.close()
    b.close()
    assert "as _collector-c1 (" in broker.log() and "as hs-s1-st-b (" not in broker.log()


def test_collector_takes_station_and_site_from_the_topic(tmp_path, provisioned_broker, fleet_pg_url, caplog):
    port = free_port()
    out = tmp_path / "out"
    provision(write_inventory(tmp_path / "inv.csv", port), out)
    provisioned_broker(out, port, persistence=False)
    login = parse_login(f"mqtt://_collector@127.0.0.1:{port}", environ={"HS_MQTT_PASSWORD": secret(out, "_collector")})
    collector = Collector(login, open_store(fleet_pg_url), group="g1")
    collector.start()
    assert collector.wait_connected(10)
    time.sleep(0.5)
    a = Client(port, "st-a", secret(out, "st-a"), "st-a", v5=False)
    mine = EventFactory("st-a", time.time(), MemorySeq())
    forged = [EventFactory("st-b", time.time(), MemorySeq()).make("call.start", 0.0, "c1", rings=9) for _ in range(2)]
    forged.append(dict(mine.make("hook", 0.0, None, state="off"), site="s2"))
    own = mine.make("hook", 1.0, None, state="on")
    for e in forged + [own]:
        a.client.publish("hs/s1/st-a/event", to_json(e), 1).wait_for_publish(5)
    assert wait_until(lambda: collector.stats.acked == 4, 10), collector.stats
    # Its birth names its zone; the provisioned ACL lets the collector read births (and no
    # station write another's): the store learns s1's zone from st-a only.
    birth = {"status": "online", "bdSeq": 1, "boot_id": "b", "desk": "D1", "tz": "Asia/Shanghai"}
    a.client.publish("hs/s1/st-a/status", json.dumps(birth), 1, retain=True).wait_for_publish(5)
    a.client.publish("hs/s1/st-b/status", json.dumps(dict(birth, tz="Europe/Paris")), 1, retain=True)
    assert wait_until(lambda: collector.stats.births >= 1, 10), collector.stats
    time.sleep(0.5)
    collector.stop()
    a.close()
    assert collector.stats.stored == 1 and collector.stats.mismatched == 3 and collector.stats.rejected == 3
    assert collector.stats.births == 1
    with open_store(fleet_pg_url) as store:
        cur = store.conn.cursor()
        cur.execute("SELECT id, station, site FROM events")
        assert cur.fetchall() == [(own["id"], "st-a", "s1")]
        assert store.site_zones() == {"s1": "Asia/Shanghai"}
    warnings = [r.getMessage() for r in caplog.records if "whose payload says" in r.getMessage()]
    assert len(warnings) == 1 and "hs/s1/st-a/event" in warnings[0] and "'st-b'" in warnings[0], warnings


def run_cli(args, env=None, timeout=60):
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False
    )


def test_operator_sends_commands_and_reads_replies(tmp_path, provisioned_broker):
    port = free_port()
    out = tmp_path / "out"
    provision(write_inventory(tmp_path / "inv.csv", port), out)
    provisioned_broker(out, port, persistence=False)
    sdir = out / "stations" / "st-a"
    table = tomllib.loads((sdir / "station.toml").read_text())
    table["station"]["state_dir"] = str(tmp_path / "state")
    table["mqtt"].update(password_file=str(sdir / "mqtt-password"))
    settings = settings_from_dict(table)
    handler = CommandHandler(
        get_config=lambda: {"profile": "hotline-5s"},
        apply_overrides=lambda o: None,
        led_test=lambda: None,
        restart=lambda: None,
        state_dir=settings.station.state_dir,
    )
    with Outbox.in_state_dir(settings.station.state_dir) as outbox:
        reporter = Reporter(settings, outbox, profile_name="hotline-5s", on_command=handler)
        reporter.start()
        try:
            assert wait_until(lambda: reporter.connected, 10)
            op = [
                "--broker",
                f"mqtt://_operator@127.0.0.1:{port}",
                "--password-file",
                str(out / "broker" / "operator-password"),
            ]
            proc = run_cli(FLEET + ["command", "st-a", "ping", *op])  # the site from st-a's retained status
            assert proc.returncode == 0, proc.stderr
            reply = json.loads(proc.stdout)
            assert reply["ok"] is True and reply["pong"] is True and reply["cmd"] == "ping"
            proc = run_cli(
                FLEET + ["command", "st-a", "set-config", '{"set": {"hold_limit_s": 90}}', "--site", "s1", *op]
            )
            assert proc.returncode == 0 and json.loads(proc.stdout)["overrides"] == {"hold_limit_s": 90}, proc.stderr
            proc = run_cli(FLEET + ["command", "st-a", "set-config", '{"set": {"hold_limit_s": -1}}', *op])
            assert proc.returncode == 1 and json.loads(proc.stdout)["ok"] is False
            proc = run_cli([sys.executable, "-m", "firmware.runtime.cli", "command", "st-a", "get-config", *op])
            assert proc.returncode == 0 and json.loads(proc.stdout)["config"] == {"profile": "hotline-5s"}, proc.stderr
            proc = run_cli(FLEET + ["command", "st-z", "ping", "--site", "s1", "--timeout", "1", *op])
            assert proc.returncode == 69 and proc.stderr.count("\n") == 1 and "no reply" in proc.stderr, proc.stderr
            # A station's own login is no operator: the broker refuses its command.
            proc = run_cli(
                FLEET + ["command", "st-b", "ping", "--site", "s1", "--broker", f"mqtt://st-a@127.0.0.1:{port}"],
                env={"HS_MQTT_PASSWORD": secret(out, "st-a")},
            )
            assert proc.returncode == 69 and "refused" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
            proc = run_cli(FLEET + ["command", "st-a", "ping", "--timeout", "nan", *op])
            assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--timeout" in proc.stderr
        finally:
            reporter.stop()


def test_service_passwords_come_from_a_file_or_the_environment(tmp_path, provisioned_broker):
    port = free_port()
    out = tmp_path / "out"
    provision(write_inventory(tmp_path / "inv.csv", port), out)
    provisioned_broker(out, port, persistence=False)
    st = Client(port, "st-a", secret(out, "st-a"), "st-a", v5=False)
    st.client.publish(
        "hs/s1/st-a/status", b'{"status":"online","bdSeq":1,"boot_id":"x"}', 1, retain=True
    ).wait_for_publish(5)
    url = f"mqtt://_monitor@127.0.0.1:{port}"
    by_file = run_cli(
        FLEET + ["monitor", "--json", "--broker", url, "--password-file", str(out / "broker" / "monitor-password")]
    )
    by_env = run_cli(FLEET + ["monitor", "--json", "--broker", url], env={"HS_MQTT_PASSWORD": secret(out, "_monitor")})
    for proc in (by_file, by_env):
        assert proc.returncode == 0, proc.stderr
        assert [s["station"] for s in json.loads(proc.stdout)["stations"]] == ["st-a"]
    loose = tmp_path / "loose-password"
    loose.write_text(secret(out, "_monitor") + "\n")
    loose.chmod(0o644)
    proc = run_cli(FLEET + ["monitor", "--json", "--broker", url, "--password-file", str(loose)])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "chmod 600" in proc.stderr
    proc = run_cli(
        FLEET + ["collect", "--broker", f"mqtt://127.0.0.1:{port}", "--duration-s", "1"], env={"HS_MQTT_PASSWORD": "x"}
    )
    assert proc.returncode == 2 and "names no user" in proc.stderr
    st.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="starting mosquitto that drops to user `mosquitto` needs root")
def test_mosquitto_running_as_its_own_user_reads_the_provisioned_files(provisioned_broker):
    """A broker started as root with `user mosquitto` (as the Debian service) loads the passwd,
    ACL and server key exactly as provision wrote them, and serves TLS with them."""
    import grp

    gid = grp.getgrnam("mosquitto").gr_gid
    root = Path(tempfile.mkdtemp(prefix="hs-fleetsec-"))  # pytest's tmp dirs are 0700: not for `mosquitto`
    try:
        root.chmod(0o755)
        port = free_port()
        out = root / "out"
        provision(write_inventory(root / "inv.csv", port, "mqtts"), out, ca_dir=root / "ca")
        for name in ("passwd", "acl", "server.key"):
            st = (out / "broker" / name).stat()
            assert (st.st_mode & 0o777, st.st_gid) == (0o640, gid), name
        provisioned_broker(out, port, user="mosquitto", persistence=False)
        sdir = out / "stations" / "st-a"
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="st-a")
        c.tls_set(ca_certs=str(sdir / "ca.crt"))
        c.username_pw_set("st-a", secret(out, "st-a"))
        got = {}
        c.on_connect = lambda cl, u, f, reason, p: got.setdefault("reason", reason)
        c.connect("127.0.0.1", port)
        c.loop_start()
        assert wait_until(lambda: "reason" in got, 10)
        assert not got["reason"].is_failure, got
        c.publish("hs/s1/st-a/status", b'{"status":"online","bdSeq":1,"boot_id":"x"}', 1, retain=True).wait_for_publish(
            5
        )
        c.disconnect()
        c.loop_stop()
        # The monitor over TLS with its provisioned certificate and password file.
        b = out / "broker"
        proc = run_cli(
            FLEET
            + [
                "monitor",
                "--json",
                "--broker",
                f"mqtts://_monitor@127.0.0.1:{port}",
                "--password-file",
                str(b / "monitor-password"),
                "--ca-file",
                str(b / "ca.crt"),
                "--cert-file",
                str(b / "monitor.crt"),
                "--key-file",
                str(b / "monitor.key"),
            ]
        )
        assert proc.returncode == 0, proc.stderr
        assert [s["station"] for s in json.loads(proc.stdout)["stations"]] == ["st-a"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_shipped_example_config_binds_sessions_on_every_listener(tmp_path, mqtt_ca):
    """config/mosquitto/mosquitto.conf.example (paths and ports changed only): on its TLS and
    its plain listener, a station using another station's client id gets its own session."""
    conf_dir = Path(__file__).resolve().parent.parent / "config" / "mosquitto"
    broker = Broker(tmp_path / "example")
    passwd = broker.dir / "passwd"
    passwd.touch(mode=0o600)
    for user in ("desk-1", "desk-2"):
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, f"pw-{user}"], check=True)
    tls_port, plain_port = broker.port, free_port()
    text = (conf_dir / "mosquitto.conf.example").read_text()
    for old, new in {
        "/etc/mosquitto/headset.passwd": str(passwd),
        "/etc/mosquitto/headset.acl": str(conf_dir / "acl.example"),
        "/var/lib/mosquitto/": f"{broker.dir}/",
        "listener 8883": f"listener {tls_port} 127.0.0.1",
        "listener 1883 127.0.0.1": f"listener {plain_port} 127.0.0.1",
        "/etc/mosquitto/ca_certificates/headset-ca.crt": str(mqtt_ca["ca"]),
        "/etc/mosquitto/certs/broker.crt": str(mqtt_ca["cert"]),
        "/etc/mosquitto/certs/broker.key": str(mqtt_ca["key"]),
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    (broker.dir / "mosquitto.conf").write_text(text + ("user root\n" if os.geteuid() == 0 else ""))
    broker.start()
    try:
        for port, tls in ((tls_port, True), (plain_port, False)):
            clients = []
            for user in ("desk-2", "desk-1"):  # desk-1 comes second, with desk-2's client id
                c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hs-site-1-desk-2")
                c.username_pw_set(user, f"pw-{user}")
                if tls:
                    c.tls_set(ca_certs=str(mqtt_ca["ca"]))
                c.connect("127.0.0.1", port)
                c.loop_start()
                assert wait_until(c.is_connected, 10), (user, port)
                clients.append(c)
            time.sleep(0.5)
            assert all(c.is_connected() for c in clients), f"desk-1 took desk-2's session on port {port}"
            for c in clients:
                c.disconnect()
                c.loop_stop()
    finally:
        broker.kill()
