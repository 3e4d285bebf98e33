"""Fleet tools under bad input, without a broker: provision needs a broker, per-desk values
survive re-provisioning (local.toml), service users and their ACL, broker file modes,
loadgen numbers, a missing dependency, the password file and URL checks."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from firmware.config.settings import load_settings
from firmware.errors import ConfigError, InputError
from firmware.protocol.login import parse_login
from headset_fleet import credentials as cred
from headset_fleet.errors import InventoryError
from headset_fleet.provision import broker_group, provision
from fixtures_fleet import FLEET

INVENTORY = "station_id,site,desk,profile\nst-a,s1,D01,hotline-5s\nst-b,s1,D02,service-2s\n"


def run(args, env=None):
    return subprocess.run(
        args, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}, check=False
    )


def one_line_error(proc, code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


@pytest.fixture
def inventory(tmp_path) -> Path:
    path = tmp_path / "inv.csv"
    path.write_text(INVENTORY)
    return path


def test_provision_without_a_broker_fails_in_one_line(inventory, tmp_path):
    proc = run(FLEET + ["provision", str(inventory), "--out", str(tmp_path / "out")])
    one_line_error(proc, 2, f"{inventory}:2", "st-a", "--broker")
    assert not (tmp_path / "out").exists()
    with pytest.raises(InventoryError, match="no broker"):
        provision(inventory, tmp_path / "out")


def test_reprovisioning_keeps_what_the_technician_set_on_the_desk(inventory, tmp_path):
    out = tmp_path / "out"
    provision(inventory, out, default_broker="mqtt://broker.test:1883")
    sdir = out / "stations" / "st-a"
    # What calibrate and the technician write on the desk: local.toml beside station.toml.
    local = '[audio]\ndevice = "USB Headset"\ntx_gain_db = 6.5\n\n[profile]\nnoise_dbfs = -40.0\n'
    (sdir / "local.toml").write_text(local)
    inventory.write_text(INVENTORY.replace("st-a,s1,D01,hotline-5s", "st-a,s1,D01,service-2s"))
    w = provision(inventory, out, default_broker="mqtt://broker.test:1883")
    assert any(str(sdir / "station.toml") in line for line in w.changed)
    assert (sdir / "local.toml").read_text() == local
    s = load_settings(sdir / "station.toml")
    assert (s.station.profile, s.audio.device, s.audio.tx_gain_db, s.profile["noise_dbfs"]) == (
        "service-2s",
        "USB Headset",
        6.5,
        -40.0,
    )
    (sdir / "local.toml").write_text('[audio]\ntx_gain_db = "loud"\n')
    with pytest.raises(ConfigError, match="local.toml.*tx_gain_db"):
        load_settings(sdir / "station.toml")


def test_calibrate_on_a_provisioned_desk_writes_local_toml(inventory, tmp_path):
    import numpy as np
    from fixtures_pulse import speech_wav

    from firmware.analysis.measure import measure
    from firmware.sim.wav import read_wav
    from firmware.tech.calibrate import run_calibrate

    out = tmp_path / "out"
    provision(inventory, out, default_broker="mqtt://broker.test:1883")
    config = out / "stations" / "st-a" / "station.toml"
    generated = config.read_text()
    rate_hz, speech = read_wav(speech_wav())
    hiss = (np.random.default_rng(1).standard_normal(len(speech)) * 10).astype(np.int16)
    takes = iter([(hiss, hiss), ((speech * 0.05).astype(np.int16), speech)])

    def recorder(_settings, _seconds):
        tx, rx = next(takes)
        return {"tx": measure(tx, rate_hz), "rx": measure(rx, rate_hz)}

    lines = []
    settings = load_settings(config).replace(audio={"rate_hz": rate_hz})
    assert run_calibrate(settings, config, assume_yes=True, out=lines.append, recorder=recorder) == 0, lines
    assert config.read_text() == generated, "calibrate edited the generated station.toml"
    gain = tomllib.loads((config.parent / "local.toml").read_text())["audio"]["tx_gain_db"]
    assert gain > 10 and load_settings(config).audio.tx_gain_db == gain
    provision(inventory, out, default_broker="mqtt://broker.test:1883")
    assert load_settings(config).audio.tx_gain_db == gain


def test_service_users_each_get_a_login_and_their_acl(inventory, tmp_path):
    out = tmp_path / "out"
    provision(inventory, out, default_broker="mqtt://broker.test:1883", collectors=["c1", "c2"], monitors=["wall"])
    users = cred.read_passwd(out / "broker" / "passwd")
    assert {"_collector-c1", "_collector-c2", "_monitor-wall", "_operator", "st-a", "st-b"} == set(users)
    for user in ("_collector-c1", "_collector-c2", "_monitor-wall", "_operator"):
        secret = out / "broker" / f"{user[1:]}-password"
        assert secret.stat().st_mode & 0o777 == 0o600
        assert cred.verify_password(secret.read_text().strip(), users[user])
    acl = (out / "broker" / "acl").read_text()
    assert "user _operator\ntopic write hs/+/+/cmd/+\ntopic read hs/+/+/cmd/+/reply\ntopic read hs/+/+/status\n" in acl
    assert "user _collector-c2\ntopic read hs/+/+/event\n" in acl
    conf = (out / "broker" / "headset.conf").read_text()
    assert "listener 1883\n" in conf and "use_username_as_clientid true" in conf
    assert f"password_file {(out / 'broker' / 'passwd').resolve()}" in conf
    with pytest.raises(InventoryError, match="--collector"):
        provision(inventory, out, default_broker="mqtt://broker.test:1883", collectors=["a/b"])


def test_broker_files_are_readable_by_the_broker_group(inventory, tmp_path):
    provision(inventory, tmp_path / "out", default_broker="mqtts://127.0.0.1:8883", ca_dir=tmp_path / "ca")
    b = tmp_path / "out" / "broker"
    gid = broker_group()
    for name in ("passwd", "acl", "server.key"):
        st = (b / name).stat()
        if gid is not None:
            assert (st.st_mode & 0o777, st.st_gid) == (0o640, gid), name
        else:
            assert st.st_mode & 0o777 == (0o600 if name == "server.key" else 0o644), name
    assert (b / "collector.crt").exists() and (b / "collector.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "option, value",
    [
        ("--stations", "-5"),
        ("--stations", "0"),
        ("--stations", "2.5"),
        ("--rate", "nan"),
        ("--rate", "-1"),
        ("--duration-s", "inf"),
        ("--per-process", "0"),
        ("--sites", "nan"),
        ("--stations", "many"),
    ],
)
def test_loadgen_refuses_bad_numbers_in_one_line(option, value):
    proc = run(FLEET + ["loadgen", "--broker", "mqtt://127.0.0.1:1", option, value])
    one_line_error(proc, 2, option)


def test_bad_broker_url_is_exit_2():
    proc = run(FLEET + ["loadgen", "--broker", "mqtt://[::1", "--duration-s", "1"])
    one_line_error(proc, 2, "mqtt://[::1")


def test_subcommand_without_its_dependency_names_what_to_install(tmp_path, inventory):
    code = (
        "import sys; sys.modules['cryptography'] = None; from headset_fleet.cli import main; "
        f"sys.exit(main(['provision', {str(inventory)!r}, '--out', {str(tmp_path / 'o')!r}, "
        f"'--broker', 'mqtts://b.test', '--ca-dir', {str(tmp_path / 'ca')!r}]))"
    )
    proc = run([sys.executable, "-c", code])
    one_line_error(proc, 2, "provision needs cryptography", "pip install")


@pytest.mark.parametrize("name", ["provision", "collect", "monitor", "report", "loadgen"])
def test_old_spelling_on_the_station_cli_points_to_headset_fleet(name):
    proc = run([sys.executable, "-m", "firmware.runtime.cli", name, "--broker", "mqtt://x"])
    one_line_error(proc, 2, f"headset-fleet {name}")


def test_password_comes_from_file_env_or_url_and_a_loose_file_is_refused(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    pw.chmod(0o600)
    url = "mqtts://_collector:from-url@broker.test"
    assert parse_login(url, environ={}).password == "from-url"
    assert parse_login(url, environ={"HS_MQTT_PASSWORD": "from-env"}).password == "from-env"
    login = parse_login(url, password_file=str(pw), environ={"HS_MQTT_PASSWORD": "from-env"})
    assert (login.password, login.username, login.port) == ("from-file", "_collector", 8883)
    assert "from-file" not in repr(login)
    pw.chmod(0o640)
    with pytest.raises(InputError, match="chmod 600"):
        parse_login(url, password_file=str(pw))
    with pytest.raises(InputError, match="names no user"):
        parse_login("mqtt://broker.test", environ={"HS_MQTT_PASSWORD": "x"})
    with pytest.raises(InputError, match="--key-file"):
        parse_login("mqtts://u@broker.test", cert_file=str(pw))
