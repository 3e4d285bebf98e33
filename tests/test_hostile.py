"""Holes found by the hostile test (issue 12): each test failed on main before its fix."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from firmware.errors import ConfigError
from firmware.protocol.brokers import read_password
from fixtures_fleet import FLEET

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, timeout_s=60):
    return subprocess.run(
        [sys.executable, "-m", "firmware.runtime.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout_s,
    )


def one_line_refusal(proc, code, *needles):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert lines and "Traceback" not in proc.stderr, proc.stderr
    assert all(n in lines[-1] for n in needles), lines[-1]


@pytest.fixture
def fifo_password(tmp_path):
    fifo = tmp_path / "mqtt-password"
    os.mkfifo(fifo, 0o600)
    return fifo


def test_read_password_refuses_a_fifo_without_blocking(fifo_password):
    result = {}

    def read():
        try:
            result["password"] = read_password(str(fifo_password))
        except ConfigError as exc:
            result["error"] = str(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # it waits for a writer: give it one so the test ends
        os.close(os.open(fifo_password, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
        pytest.fail("read_password blocked on a FIFO")
    assert "mqtt.password_file" in result["error"] and "not a regular file" in result["error"]


def test_replay_publish_with_a_fifo_password_file_is_refused(tmp_path, fifo_password):
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f'[mqtt]\nbrokers = ["mqtt://127.0.0.1:1"]\npassword_file = "{fifo_password}"\n'
        f'[station]\nstate_dir = "{tmp_path / "state"}"\n'
    )
    scenario = tmp_path / "call.toml"
    scenario.write_text('[[inputs]]\nt = 0.5\nhook = "off"\n')
    proc = run_cli("replay", "--config", cfg, "--publish", "--drain-timeout", "1", scenario, timeout_s=30)
    one_line_refusal(proc, 78, "mqtt.password_file", "not a regular file")


def test_relative_paths_in_a_config_file_are_relative_to_its_directory(tmp_path):
    """check-config used to resolve them from its own working directory and the service from
    /var/lib/headset-station (its WorkingDirectory): one file, two meanings."""
    from firmware.config.settings import load_settings

    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "pw").write_text("secret\n")
    (conf_dir / "pw").chmod(0o600)
    cfg = conf_dir / "station.toml"
    cfg.write_text(
        '[station]\nstate_dir = "state"\nprofile = "profiles/mine.toml"\n'
        '[audio]\nwav_tx = "tx.wav"\n'
        '[mqtt]\nbrokers = ["mqtt://127.0.0.1:1883"]\npassword_file = "pw"\nca_file = "/abs/ca.pem"\n'
    )
    s = load_settings(cfg)
    assert s.station.state_dir == str(conf_dir / "state")
    assert s.station.profile == str(conf_dir / "profiles" / "mine.toml")
    assert s.audio.wav_tx == str(conf_dir / "tx.wav")
    assert s.mqtt.password_file == str(conf_dir / "pw")
    assert s.mqtt.ca_file == "/abs/ca.pem", "absolute paths stay"
    assert load_settings(None).station.state_dir == "var/state", "a default is not from a file"
    # the same from any working directory, through the CLI
    cfg.write_text(
        '[station]\nstate_dir = "state"\n[mqtt]\nbrokers = ["mqtt://127.0.0.1:1883"]\npassword_file = "pw"\n'
    )
    for cwd in (ROOT, tmp_path):
        proc = subprocess.run(
            [sys.executable, "-m", "firmware.runtime.cli", "check-config", str(cfg)],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("overrides", [{"dead_air_s": 20.0}, {"dead_air_busy_s": 3.0}])
def test_dead_air_after_dead_air_busy_is_refused(tmp_path, overrides):
    """The system-delay announcement must not come before the wait announcement."""
    from firmware.config.profiles import load_profile

    with pytest.raises(ConfigError, match="dead_air_s"):
        load_profile("outbound-10086", overrides)
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        '[station]\nprofile = "outbound-10086"\n[profile]\n' + "".join(f"{k} = {v}\n" for k, v in overrides.items())
    )
    one_line_refusal(run_cli("check-config", cfg), 78, "dead_air_s", "dead_air_busy_s")
    assert load_profile("outbound-10086", {"dead_air_s": 10.0}).dead_air_s == 10.0, "equal is fine"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (as `sudo headset-station ...` runs)")
def test_root_does_not_leave_root_owned_files_in_the_service_users_state_dir(tmp_path):
    """`sudo headset-station replay --publish` / `run` used to create outbox.db, its lock and
    seq.hwm as root in the service user's state dir; the service then could not write them."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    import shutil
    import tempfile

    outside = Path(tempfile.mkdtemp(prefix="hs-root-"))  # pytest's tmp dirs are 0700 root: nobody cannot enter
    outside.chmod(0o755)
    try:
        _root_run_refused(tmp_path, outside / "state", nobody)
    finally:
        shutil.rmtree(outside)


def _root_run_refused(tmp_path, state, nobody):
    state.mkdir(mode=0o750)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    scenario = tmp_path / "call.toml"
    scenario.write_text('[[inputs]]\nt = 0.5\nhook = "off"\n')
    proc = run_cli(
        "replay",
        "--publish",
        "--drain-timeout",
        "1",
        "--broker",
        "mqtt://127.0.0.1:1",
        "--state-dir",
        state,
        scenario,
        timeout_s=60,
    )
    one_line_refusal(proc, 2, "belongs to nobody", "sudo -u nobody")  # the CLI refuses before the outbox is opened
    assert list(state.iterdir()) == [], "nothing created as root"
    # files an earlier root run left behind are named as such, not as an unwritable directory
    (state / "outbox.db.lock").touch(mode=0o600)
    from firmware.reporting.outbox import Outbox

    os.seteuid(nobody.pw_uid)  # the service user, as the unit runs it (reverted below)
    try:
        with pytest.raises(ConfigError) as refused:
            Outbox.in_state_dir(state)
    finally:
        os.seteuid(0)
    assert "outbox.db.lock is owned by root" in str(refused.value) and "chown -R nobody:" in str(refused.value)


@pytest.mark.parametrize("name", ["overrides.json", "agent.json", "seq.hwm", "overrides.json:bytes"])
def test_a_fifo_or_binary_file_in_the_state_dir_does_not_hang_or_stop_the_station(tmp_path, name):
    """overrides.json, agent.json and seq.hwm were read with a blocking open (a FIFO hung `run`
    and `check-config` forever), and an overrides.json that is not UTF-8 stopped `run` (exit 70)."""
    name, _, kind = name.partition(":")
    state = tmp_path / "state"
    state.mkdir()
    if kind == "bytes":
        (state / name).write_bytes(b"\xff\xfe\x00garbage")
    else:
        os.mkfifo(state / name, 0o600)
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[station]\nstate_dir = "{state}"\n[mqtt]\nbrokers = ["mqtt://127.0.0.1:1"]\n')
    scenario = tmp_path / "call.toml"
    scenario.write_text('[[inputs]]\nt = 0.5\nhook = "off"\n[[inputs]]\nt = 1.5\nhook = "on"\n')
    check = run_cli("check-config", cfg, timeout_s=30)
    assert "Traceback" not in check.stderr and check.returncode in (0, 78), check.stderr
    proc = run_cli("run", "--simulate", "--config", cfg, "--scenario", scenario, "--format", "json", timeout_s=60)
    assert proc.returncode == 0, proc.stderr
    assert '"call.end"' in proc.stdout
    if name != "seq.hwm":
        assert '"component":"storage"' in proc.stdout.replace(" ", ""), "a storage fault names the file"


def test_a_flood_of_led_tests_runs_one_per_interval(tmp_path):
    """Each led-test holds the rules loop ~1 s (LEDs on in turn): 64 queued led-tests kept the
    loop busy for over a minute, dropping audio blocks; now one runs per LED_TEST_INTERVAL_S."""
    from firmware.reporting.commands import LED_TEST_INTERVAL_S, CommandHandler

    runs = []
    h = CommandHandler(lambda: {}, lambda o: None, lambda: runs.append(1), lambda: None, tmp_path)
    replies = [h.handle("led-test", b"{}") for _ in range(64)]
    assert replies[0]["ok"] and len(runs) == 1
    assert all(not r["ok"] and "at most one led-test every" in r["error"] for r in replies[1:])
    assert LED_TEST_INTERVAL_S <= 10


@pytest.mark.parametrize("start", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+08:00"])
def test_a_scenario_start_whose_event_times_cannot_be_written_is_refused(tmp_path, start):
    """`replay` of a scenario starting in 9999-12-31 (or 0001-01-01 at +08:00) stopped with
    'internal error: ValueError: year 10000 is out of range' (exit 70)."""
    scenario = tmp_path / "call.toml"
    scenario.write_text(f'start = "{start}"\n[[inputs]]\nt = 0.5\nhook = "off"\n')
    one_line_refusal(run_cli("replay", scenario), 2, "call.toml", "start", "outside 1970-9000")


def test_command_json_nested_too_deeply_is_bad_input(tmp_path):
    """`headset-fleet command ST NAME JSON` with a JSON argument nested 20,000 deep was exit 70;
    the same RecursionError on a (hostile) station's reply ended the operator's command with 70."""
    from firmware.errors import InputError
    from firmware.protocol.command_client import parse_request

    with pytest.raises(InputError, match="nested too deeply"):
        parse_request("[" * 20000 + "]" * 20000)
    proc = subprocess.run(
        [
            *FLEET,
            "command",
            "st",
            "ping",
            "[" * 20000 + "]" * 20000,
            "--broker",
            "mqtt://_op:pw@127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    one_line_refusal(proc, 2, "JSON", "nested too deeply")
