"""Provisioning: files, idempotence, one-row changes, bad CSVs, and the ACL on a real Mosquitto."""

from __future__ import annotations

import subprocess
import time
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fixtures_fleet import FLEET
from fixtures_mqtt import wait_until

from firmware.config.settings import settings_from_dict
from headset_fleet import credentials as cred
from headset_fleet.errors import InventoryError
from headset_fleet.provision import provision

INVENTORY = """station_id,site,desk,profile,broker
st-001,sh-a,D01,hotline-5s,mqtts://mqtt.fleet.test:8883
st-002,sh-a,D02,service-2s,mqtts://mqtt.fleet.test:8883
st-003,bj-b,D01,outbound-10086,mqtts://mqtt.fleet.test:8883
"""


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def inventory(tmp_path) -> Path:
    path = tmp_path / "inventory.csv"
    path.write_text(INVENTORY)
    return path


def test_outputs_are_valid_station_configs(inventory, tmp_path):
    out = tmp_path / "out"
    w = provision(inventory, out)
    assert len(w.changed) == 3 + 3 * 2 + 3  # service passwords, station files, passwd/acl/headset.conf
    for sid, site, profile in (("st-001", "sh-a", "hotline-5s"), ("st-003", "bj-b", "outbound-10086")):
        text = (out / "stations" / sid / "station.toml").read_text()
        s = settings_from_dict(tomllib.loads(text))
        assert (s.station.id, s.station.site, s.station.profile, s.mqtt.username) == (sid, site, profile, sid)
        assert (out / "stations" / sid / "mqtt-password").stat().st_mode & 0o777 == 0o600
    passwd = cred.read_passwd(out / "broker" / "passwd")
    pw = (out / "stations" / "st-002" / "mqtt-password").read_text().strip()
    assert cred.verify_password(pw, passwd["st-002"])
    acl = (out / "broker" / "acl").read_text()
    assert "user st-003\ntopic write hs/bj-b/st-003/event\n" in acl and "topic read hs/bj-b/st-003/cmd/+" in acl


def test_second_run_changes_nothing(inventory, tmp_path):
    out, ca = tmp_path / "out", tmp_path / "ca"
    provision(inventory, out, ca_dir=ca)
    before = snapshot(out)
    w = provision(inventory, out, ca_dir=ca)
    assert w.changed == []
    assert snapshot(out) == before


def test_changed_row_changes_only_that_station(inventory, tmp_path):
    out = tmp_path / "out"
    provision(inventory, out)
    before = snapshot(out)
    inventory.write_text(INVENTORY.replace("st-002,sh-a,D02,service-2s", "st-002,sh-a,D02,return-visit"))
    w = provision(inventory, out)
    after = snapshot(out)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {"stations/st-002/station.toml"}, changed
    assert [c.split(" ", 1)[0] for c in w.changed] == ["updated"]


def test_removed_row_revokes_the_login(inventory, tmp_path):
    out = tmp_path / "out"
    provision(inventory, out)
    inventory.write_text(INVENTORY.replace("st-003,bj-b,D01,outbound-10086,mqtts://mqtt.fleet.test:8883\n", ""))
    w = provision(inventory, out)
    assert "st-003" not in cred.read_passwd(out / "broker" / "passwd")
    assert "st-003" not in (out / "broker" / "acl").read_text()
    assert any("st-003 is not in the inventory" in n for n in w.notes)


def test_boot_partition_gets_one_station(inventory, tmp_path):
    boot = tmp_path / "bootfs"
    boot.mkdir()
    provision(inventory, tmp_path / "out", boot_partition=boot, station="st-003", ca_dir=tmp_path / "ca")
    files = sorted(p.name for p in (boot / "headset-station").iterdir())
    assert files == ["ca.crt", "client.crt", "client.key", "install.sh", "mqtt-password", "station.toml"]
    assert 'id = "st-003"' in (boot / "headset-station" / "station.toml").read_text()
    with pytest.raises(InventoryError, match="--station"):
        provision(inventory, tmp_path / "out", boot_partition=boot)


def test_client_cert_is_signed_by_fleet_ca(inventory, tmp_path):
    from cryptography import x509

    provision(inventory, tmp_path / "out", ca_dir=tmp_path / "ca")
    ca = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.crt").read_bytes())
    crt = x509.load_pem_x509_certificate((tmp_path / "out" / "stations" / "st-001" / "client.crt").read_bytes())
    crt.verify_directly_issued_by(ca)
    assert crt.subject.rfc4514_string() == "CN=st-001"


@pytest.mark.parametrize(
    "text, message",
    [
        ("station_id,site,profile\nst-1,a,hotline-5s\n", ":1: missing column desk"),
        (
            "station_id,site,desk,profile\nst-1,a,D1,hotline-5s\nst-1,a,D2,hotline-5s\n",
            ":3: duplicate station_id 'st-1' (first at line 2)",
        ),
        ("station_id,site,desk,profile\nst-1,a,D1,hotline-6s\n", ":2: unknown profile 'hotline-6s'"),
        ("station_id,site,desk,profile\nst+1,a,D1,hotline-5s\n", ":2: bad station_id 'st+1'"),
        ("station_id,site,desk,profile\nst-1,a/b,D1,hotline-5s\n", ":2: bad site 'a/b'"),
        ("station_id,site,desk,profile,broker\nst-1,a,D1,hotline-5s,http://x\n", ":2: broker 'http://x'"),
    ],
)
def test_bad_inventory_is_one_line_exit_2(tmp_path, text, message):
    path = tmp_path / "inv.csv"
    path.write_text(text)
    proc = subprocess.run(
        [
            *FLEET,
            "provision",
            str(path),
            "--out",
            str(tmp_path / "o"),
            "--broker",
            "mqtt://b.test",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"{path}{message}" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()


def _client(broker, user, password, client_id):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    c.username_pw_set(user, password)
    rc = {}
    c.on_connect = lambda cl, u, f, reason, p: rc.setdefault("rc", reason)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    deadline = time.monotonic() + 15
    while "rc" not in rc and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "rc" in rc, f"no CONNACK for {user}"
    return c, rc["rc"]


def test_broker_acl_lets_a_station_publish_only_under_its_own_topic(inventory, tmp_path, fleet_broker_factory):
    out = tmp_path / "out"
    provision(inventory, out)
    broker = fleet_broker_factory(passwd=out / "broker" / "passwd", acl=out / "broker" / "acl")
    secret = lambda sid: (out / "stations" / sid / "mqtt-password").read_text().strip()
    mon_pw = (out / "broker" / "monitor-password").read_text().strip()

    got = []
    monitor, rc = _client(broker, "_monitor", mon_pw, "mon")
    assert not rc.is_failure
    monitor.on_message = lambda c, u, m: got.append(m.topic)
    monitor.subscribe("hs/#", qos=1)
    time.sleep(0.3)

    bad, rc = _client(broker, "st-001", "wrong-password", "bad")
    assert rc.is_failure  # the password file is enforced
    bad.loop_stop()

    def attempt(user, topic):
        # One connection per attempt keeps the attempts independent. (A denied QoS 1 publish
        # from a 3.1.1 client is PUBACKed and dropped by mosquitto 2.0.11; with one shared
        # connection the broker sometimes closed the link mid-sequence, which made this flaky.)
        c, rc = _client(broker, user, secret(user), f"{user}-{len(topic)}-{topic.count('/')}-{topic[-6:]}")
        assert not rc.is_failure
        try:
            c.publish(topic, b"{}", qos=1).wait_for_publish(3)
        except (RuntimeError, ValueError):
            pass
        time.sleep(0.1)
        c.disconnect()
        c.loop_stop()

    attempt("st-001", "hs/sh-a/st-001/event")
    attempt("st-001", "hs/sh-a/st-002/event")  # someone else's topic
    attempt("st-001", "hs/bj-b/st-003/status")
    attempt("st-001", "hs/other/st-001/event")  # own id, wrong site
    attempt("st-001", "hs/sh-a/st-001/cmd/reboot")  # commands to itself: read only
    attempt("st-003", "hs/bj-b/st-003/event")
    time.sleep(0.5)
    monitor.disconnect()
    monitor.loop_stop()
    assert sorted(got) == ["hs/bj-b/st-003/event", "hs/sh-a/st-001/event"]


def test_collector_user_can_share_subscribe(inventory, tmp_path, fleet_broker_factory):
    from headset_fleet.collector import Collector
    from headset_fleet.connect import parse_broker_url
    from headset_fleet.store import open_store

    out = tmp_path / "out"
    provision(inventory, out)
    broker = fleet_broker_factory(passwd=out / "broker" / "passwd", acl=out / "broker" / "acl")
    pw = (out / "broker" / "collector-password").read_text().strip()
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    col = Collector(parse_broker_url(f"mqtt://_collector:{pw}@127.0.0.1:{broker.port}"), store)
    col.start()
    assert col.wait_connected(5)
    time.sleep(0.3)
    st1, _ = _client(broker, "st-001", (out / "stations" / "st-001" / "mqtt-password").read_text().strip(), "st1")
    ev = {
        "type": "hook",
        "t": 0,
        "ts": "2026-11-22T04:00:00.000Z",
        "station": "st-001",
        "seq": 1,
        "id": "abc",
        "call": None,
    }
    import json

    st1.publish("hs/sh-a/st-001/event", json.dumps(ev), qos=1).wait_for_publish(5)
    assert wait_until(lambda: col.stats.stored == 1, 5), col.stats
    col.stop()
    st1.disconnect()
    st1.loop_stop()


def test_provisioned_station_reports_through_its_own_code(inventory, tmp_path, fleet_broker_factory):
    """provision -> Mosquitto with the generated passwd/ACL -> the station's Reporter and outbox,
    configured from its generated station.toml -> the collector as `_collector` -> the store."""
    import json as _json

    from firmware.protocol.envelope import EventFactory
    from firmware.reporting.outbox import Outbox
    from firmware.reporting.reporter import Reporter
    from headset_fleet.collector import Collector
    from headset_fleet.connect import parse_broker_url
    from headset_fleet.store import open_store

    out = tmp_path / "out"
    provision(inventory, out)
    broker = fleet_broker_factory(passwd=out / "broker" / "passwd", acl=out / "broker" / "acl")
    pw = (out / "broker" / "collector-password").read_text().strip()
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    col = Collector(parse_broker_url(f"mqtt://_collector:{pw}@127.0.0.1:{broker.port}"), store, client_id="e2e")
    col.start()
    assert col.wait_connected(5)
    sdir = out / "stations" / "st-002"
    table = tomllib.loads((sdir / "station.toml").read_text())
    # On the unit these live in /etc and /var/lib; here in tmp, and the broker is the test's.
    table["station"]["state_dir"] = str(tmp_path / "state")
    table["mqtt"].update(brokers=[broker.url], password_file=str(sdir / "mqtt-password"), ca_file="")
    settings = settings_from_dict(table)
    outbox = Outbox.in_state_dir(settings.station.state_dir)
    reporter = Reporter(settings, outbox, profile_name=settings.station.profile)
    reporter.start()
    factory = EventFactory(settings.station.id, time.time(), outbox)
    events = [factory.make("hook", i * 0.5, None, state="off" if i % 2 == 0 else "on") for i in range(5)]
    for e in events:
        reporter.sink(e)
    assert reporter.wait_drained(10)
    assert wait_until(lambda: col.stats.stored == 5, 10), col.stats
    reporter.stop()
    outbox.close()
    col.stop()
    cur = store.conn.cursor()
    cur.execute("SELECT site, station, body FROM events ORDER BY seq")
    rows = cur.fetchall()
    assert [(r[0], r[1]) for r in rows] == [("sh-a", "st-002")] * 5
    assert [_json.loads(r[2])["id"] for r in rows] == [e["id"] for e in events]
    store.close()


def test_tls_client_certificates_are_the_station_identity(tmp_path, fleet_broker_factory):
    """Fleet CA -> broker server cert + station client certs; Mosquitto requires a certificate
    and takes the CN as the user, so the ACL applies: st-001's certificate publishes under
    st-001 only. The station side is its own Reporter over mqtts://."""
    from fixtures_fleet import free_port

    from firmware.protocol.envelope import EventFactory
    from firmware.reporting.outbox import Outbox
    from firmware.reporting.reporter import Reporter

    port = free_port()
    inv = tmp_path / "inv.csv"
    inv.write_text(
        "station_id,site,desk,profile,broker\n"
        f"st-001,sh-a,D01,hotline-5s,mqtts://127.0.0.1:{port}\n"
        f"st-002,sh-a,D02,hotline-5s,mqtts://127.0.0.1:{port}\n"
    )
    out, ca_dir = tmp_path / "out", tmp_path / "ca"
    provision(inv, out, ca_dir=ca_dir)
    b = out / "broker"
    fleet_broker_factory(
        port=port,
        acl=b / "acl",
        extra=(
            f"cafile {b / 'ca.crt'}\ncertfile {b / 'server.crt'}\nkeyfile {b / 'server.key'}\n"
            "require_certificate true\nuse_identity_as_username true\n"
        ),
    )
    ca_key, ca_cert = cred.load_or_create_ca(ca_dir)
    mon_key, mon_crt = cred.issue_cert("_monitor", ca_key, ca_cert)
    (tmp_path / "mon.key").write_bytes(mon_key)
    (tmp_path / "mon.crt").write_bytes(mon_crt)

    got = []
    mon = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mon")
    mon.tls_set(ca_certs=str(b / "ca.crt"), certfile=str(tmp_path / "mon.crt"), keyfile=str(tmp_path / "mon.key"))
    mon.on_message = lambda c, u, m: got.append(m.topic)
    mon.on_connect = lambda c, *a: c.subscribe("hs/#", qos=1)
    mon.connect("127.0.0.1", port)
    mon.loop_start()
    time.sleep(0.5)

    sdir = out / "stations" / "st-001"
    table = tomllib.loads((sdir / "station.toml").read_text())
    table["station"]["state_dir"] = str(tmp_path / "state")
    table["mqtt"].update(
        password_file="",
        username="",
        ca_file=str(sdir / "ca.crt"),
        cert_file=str(sdir / "client.crt"),
        key_file=str(sdir / "client.key"),
    )
    settings = settings_from_dict(table)
    outbox = Outbox.in_state_dir(settings.station.state_dir)
    reporter = Reporter(settings, outbox, profile_name="hotline-5s")
    reporter.start()
    factory = EventFactory("st-001", time.time(), outbox)
    reporter.sink(factory.make("hook", 0.0, None, state="off"))
    assert reporter.wait_drained(10)
    reporter.stop()
    outbox.close()

    rogue = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rogue")
    rogue.tls_set(ca_certs=str(b / "ca.crt"), certfile=str(sdir / "client.crt"), keyfile=str(sdir / "client.key"))
    rogue.connect("127.0.0.1", port)
    rogue.loop_start()
    try:
        rogue.publish("hs/sh-a/st-002/event", b"{}", qos=1).wait_for_publish(3)
    except (RuntimeError, ValueError):
        pass
    time.sleep(0.5)
    rogue.loop_stop()
    mon.disconnect()
    mon.loop_stop()
    assert "hs/sh-a/st-001/event" in got and "hs/sh-a/st-001/status" in got
    assert not [t for t in got if "st-002" in t], got


def test_password_hash_matches_mosquitto_passwd(tmp_path):
    """Our $7$ entries and mosquitto_passwd's (2.0.11) are the same format, both ways."""
    import shutil

    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd not installed (tools/dev installs mosquitto)")
    f = tmp_path / "pw"
    f.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(f), "alice", "s3cret"], check=True)
    theirs = cred.read_passwd(f)["alice"]
    assert theirs.startswith(f"$7${cred.ITERATIONS}$")
    assert cred.verify_password("s3cret", theirs) and not cred.verify_password("other", theirs)
    ours = cred.hash_password("s3cret")
    assert [len(p) for p in ours.split("$")] == [len(p) for p in theirs.split("$")]
