"""TLS with a test CA, passwords, the shipped ACL example, password-file permissions."""

import os
import subprocess
import time
from contextlib import closing, contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fixtures_mqtt import Broker, Collector, free_port, make_cert, station_settings, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from firmware.errors import ConfigError
from firmware.protocol.brokers import parse_broker
from firmware.protocol.envelope import EventFactory
from firmware.reporting.outbox import Outbox
from firmware.reporting.reporter import Reporter

ACL_EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "mosquitto" / "acl.example"
USERS = {"desk-1": "pw-desk-1", "desk-2": "pw-desk-2", "_monitor": "pw-monitor", "_operator": "pw-operator"}


def password_file(tmp_path, user):
    path = tmp_path / f"{user}.pw"
    path.write_text(USERS[user] + "\n")
    path.chmod(0o600)
    return path


@contextmanager
def running_reporter(settings, **kwargs):
    """(reporter, outbox, faults) of a started Reporter; stopped and closed on exit."""
    faults = []
    with Outbox.in_state_dir(settings.station.state_dir) as outbox:
        reporter = Reporter(settings, outbox, profile_name="hotline-5s", on_fault=lambda *a: faults.append(a), **kwargs)
        reporter.start()
        try:
            yield reporter, outbox, faults
        finally:
            reporter.stop()


def test_tls_with_the_right_ca_connects_and_delivers(mqtt_broker_factory, mqtt_ca, tmp_path):
    broker = mqtt_broker_factory(tls={"ca": mqtt_ca["ca"], "cert": mqtt_ca["cert"], "key": mqtt_ca["key"]})
    assert broker.url.startswith("mqtts://")
    settings = station_settings(broker.url, state_dir=tmp_path / "s", ca_file=str(mqtt_ca["ca"]))
    with (
        closing(Collector(broker, ca=mqtt_ca["ca"])) as collector,
        running_reporter(settings) as (reporter, outbox, faults),
    ):
        event = EventFactory("desk-1", time.time(), outbox).make("mute", 0.0, None, state=True)
        reporter.sink(event)
        assert reporter.wait_drained(10)
        assert collector.wait_for(lambda c: c.payloads() == [event], 5)
        assert faults == []


def test_tls_with_the_wrong_ca_refuses_and_says_why(mqtt_broker_factory, mqtt_ca, tmp_path, caplog):
    broker = mqtt_broker_factory(tls={"ca": mqtt_ca["ca"], "cert": mqtt_ca["cert"], "key": mqtt_ca["key"]})
    settings = station_settings(broker.url, state_dir=tmp_path / "s", ca_file=str(mqtt_ca["wrong_ca"]))
    with running_reporter(settings) as (reporter, outbox, faults):
        assert wait_until(lambda: faults, 10)
        component, detail, cleared = faults[0]
        assert component == "mqtt" and not cleared
        assert "certificate verif" in detail and "mqtt.ca_file" in detail, detail
        time.sleep(1.5)  # it keeps retrying, and keeps failing
        assert not reporter.connected and outbox.depth == 0
        assert any("certificate verif" in r.getMessage() for r in caplog.records)


def test_client_certificate_authenticates_the_station(mqtt_broker_factory, mqtt_ca, tmp_path):
    broker = mqtt_broker_factory(
        tls={"ca": mqtt_ca["ca"], "cert": mqtt_ca["cert"], "key": mqtt_ca["key"]},
        extra=("require_certificate true", "use_identity_as_username true"),
        acl=ACL_EXAMPLE.read_text(),
    )
    cert, key = make_cert(mqtt_ca["dir"], "desk-1", (mqtt_ca["ca"], mqtt_ca["ca_key"]))  # CN = station id
    base = {"state_dir": tmp_path / "s", "ca_file": str(mqtt_ca["ca"])}
    with running_reporter(station_settings(broker.url, **base)) as (without, _outbox0, faults0):
        assert wait_until(lambda: faults0, 10) and not without.connected  # no certificate: refused
    monitor = Collector(
        broker, "hs/#", ca=mqtt_ca["ca"], cert=make_cert(mqtt_ca["dir"], "_monitor", (mqtt_ca["ca"], mqtt_ca["ca_key"]))
    )
    settings = station_settings(
        broker.url, **{**base, "state_dir": tmp_path / "s2"}, cert_file=str(cert), key_file=str(key)
    )
    with closing(monitor), running_reporter(settings) as (reporter, outbox, faults):
        event = EventFactory("desk-1", time.time(), outbox).make("hook", 0.0, None, state="off")
        reporter.sink(event)
        assert reporter.wait_drained(10), faults
        assert monitor.wait_for(lambda c: c.payloads() == [event], 5)  # delivered, so the ACL saw CN = desk-1
        assert faults == []


def test_acl_station_cannot_publish_under_another_station(mqtt_broker_factory, tmp_path):
    broker = mqtt_broker_factory(users=USERS, acl=ACL_EXAMPLE.read_text())
    settings = station_settings(
        broker.url, state_dir=tmp_path / "s", password_file=str(password_file(tmp_path, "desk-1"))
    )
    collector = Collector(broker, "hs/#", username="_monitor", password=USERS["_monitor"])  # full read rights
    with (
        closing(collector),
        running_reporter(settings, on_command=lambda name, payload: {"ok": True, "cmd": name}) as (
            reporter,
            outbox,
            faults,
        ),
    ):
        own = EventFactory("desk-1", time.time(), outbox).make("hook", 0.0, None, state="off")
        reporter.sink(own)
        assert reporter.wait_drained(10)
        # The same credentials, publishing a forged event for desk-2: PUBACKed, then dropped.
        rogue = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rogue")
        rogue.username_pw_set("desk-1", USERS["desk-1"])
        rogue.connect("127.0.0.1", broker.port)
        rogue.loop_start()
        forged = rogue.publish("hs/site-1/desk-2/event", b'{"forged":true}', qos=1)
        forged.wait_for_publish(5)
        allowed = rogue.publish("hs/site-1/desk-1/event", b'{"allowed":true}', qos=1)
        allowed.wait_for_publish(5)
        assert collector.wait_for(lambda c: {"allowed": True} in c.payloads(), 5)
        time.sleep(0.5)
        topics = [t for t, _p, _r in collector.messages]
        assert "hs/site-1/desk-2/event" not in topics
        assert own in collector.payloads()
        assert "Denied PUBLISH" in broker.log()
        rogue.disconnect()
        rogue.loop_stop()
        # Commands: the operator reaches desk-1 and reads its reply; desk-2 cannot listen in.
        operator = Collector(broker, "hs/+/+/cmd/+/reply", username="_operator", password=USERS["_operator"])
        snoop = Collector(broker, "hs/site-1/desk-1/cmd/+", username="desk-2", password=USERS["desk-2"])
        operator.client.publish("hs/site-1/desk-1/cmd/ping", b"{}", 1)
        assert operator.wait_for(lambda c: c.payloads("/reply") == [{"ok": True, "cmd": "ping"}], 5)
        time.sleep(0.3)
        assert snoop.messages == []
        operator.close()
        snoop.close()
        assert faults == []


def test_wrong_password_is_a_fault_naming_the_broker(mqtt_broker_factory, tmp_path):
    broker = mqtt_broker_factory(users=USERS, acl=ACL_EXAMPLE.read_text())
    bad = tmp_path / "bad.pw"
    bad.write_text("nope\n")
    bad.chmod(0o600)
    settings = station_settings(broker.url, state_dir=tmp_path / "s", password_file=str(bad))
    with running_reporter(settings) as (reporter, outbox, faults):
        assert wait_until(lambda: faults, 10)
        assert faults[0][0] == "mqtt" and "refused" in faults[0][1] and broker.url in faults[0][1]
        assert not reporter.connected


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_password_file_readable_by_others_is_refused(tmp_path, mode):
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    pw.chmod(mode)
    settings = station_settings("mqtt://127.0.0.1:1", state_dir=tmp_path / "s", password_file=str(pw))
    with Outbox.in_state_dir(tmp_path / "s") as outbox, pytest.raises(ConfigError) as err:
        Reporter(settings, outbox, profile_name="hotline-5s")
    message = str(err.value)
    assert "mqtt.password_file" in message and "chmod 600" in message and f"{mode:04o}" in message
    assert "\n" not in message


def test_missing_password_file_and_mixed_schemes_are_config_errors(tmp_path):
    with Outbox.in_state_dir(tmp_path / "s") as outbox:
        with pytest.raises(ConfigError, match="cannot read"):
            Reporter(station_settings("mqtt://h:1", password_file=str(tmp_path / "none")), outbox, profile_name="p")
        with pytest.raises(ConfigError, match="mixes"):
            Reporter(station_settings(["mqtt://a:1", "mqtts://b:2"]), outbox, profile_name="p")
        with pytest.raises(ConfigError, match="no broker"):
            Reporter(station_settings([]), outbox, profile_name="p")


def test_shipped_broker_config_and_acl_work_together(mqtt_ca, tmp_path):
    """config/mosquitto/*.example, with only paths and ports changed, serves a TLS station."""
    conf_dir = ACL_EXAMPLE.parent
    broker = Broker(tmp_path / "shipped")
    passwd = broker.dir / "headset.passwd"
    passwd.touch(mode=0o600)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "desk-1", USERS["desk-1"]], check=True)
    tls_port, plain_port = broker.port, free_port()
    text = (conf_dir / "mosquitto.conf.example").read_text()
    for old, new in {
        "/etc/mosquitto/headset.passwd": str(passwd),
        "/etc/mosquitto/headset.acl": str(ACL_EXAMPLE),
        "/var/lib/mosquitto/": f"{broker.dir}/",
        "listener 8883": f"listener {tls_port} 127.0.0.1",
        "listener 1883 127.0.0.1": f"listener {plain_port} 127.0.0.1",
        "/etc/mosquitto/ca_certificates/headset-ca.crt": str(mqtt_ca["ca"]),
        "/etc/mosquitto/certs/broker.crt": str(mqtt_ca["cert"]),
        "/etc/mosquitto/certs/broker.key": str(mqtt_ca["key"]),
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    if os.geteuid() == 0:
        text += "user root\n"
    (broker.dir / "mosquitto.conf").write_text(text)
    broker.tls = True
    broker.start()
    try:
        settings = station_settings(
            broker.url,
            state_dir=tmp_path / "s",
            ca_file=str(mqtt_ca["ca"]),
            password_file=str(password_file(tmp_path, "desk-1")),
        )
        with running_reporter(settings) as (reporter, outbox, faults):
            event = EventFactory("desk-1", time.time(), outbox).make("hook", 0.0, None, state="on")
            reporter.sink(event)
            assert reporter.wait_drained(10), faults
            assert faults == []
    finally:
        broker.kill()


def test_broker_urls_are_checked():
    assert parse_broker("mqtts://broker.example") == (True, "broker.example", 8883)
    assert parse_broker("mqtt://10.0.0.5:1884") == (False, "10.0.0.5", 1884)
    for bad in ("http://x:1", "mqtt://", "mqtt://h:port", "broker:1883"):
        with pytest.raises(ConfigError, match="mqtt.brokers"):
            parse_broker(bad)
