"""check-config catches everything `run` hits at start, so OK means the service will start.

Run through the real command line. The tests that check files for the service user need
root (they chown files to `nobody`); CI runs as root.
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tomlkit

CLI = [sys.executable, "-m", "firmware.runtime.cli"]
ROOT = Path(__file__).resolve().parent.parent
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def run_cli(*args, cwd=None, input=None):
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd or ROOT, timeout=120, check=False, input=input
    )


def config(tmp_path, body: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(body, encoding="utf-8")
    return path


def assert_refused(proc, *needles, code=78):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "OK" not in proc.stdout
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "body, needle",
    [
        ("[gpio]\nhook_pin = 27\n", "gpio.mute_pin: GPIO27 is already gpio.hook_pin"),
        ("[gpio]\nhook_pin = 13\n", "leds.red_pin: GPIO13 is already gpio.hook_pin"),
        ('[station]\nid = "a/b"\n', "station.id: 'a/b' must be one MQTT topic level"),
        ('[station]\nsite = "#"\n', "station.site: '#' must be one MQTT topic level"),
        ('[station]\nid = "+"\n', "station.id: '+'"),
        ('[station]\nid = ""\n', "station.id: ''"),
        ("[profile]\nhold_warn_s = 70.0\n", "hold_warn_s: 70 s is above profile.hold_limit_s 60 s"),
        ("[mqtt]\noutbox_max_mb = nan\n", "mqtt.outbox_max_mb: nan is not a finite number"),
        ("[profile]\nhold_limit_s = nan\n", "profile.hold_limit_s: nan is not a finite number"),
        ("[profile]\nhold_limit_s = inf\n", "profile.hold_limit_s: inf is not a finite number"),
        ("[audio]\ntx_gain_db = -inf\n", "audio.tx_gain_db: -inf is not a finite number"),
    ],
)
def test_check_config_refuses_what_run_would_refuse(tmp_path, body, needle):
    assert_refused(run_cli("check-config", config(tmp_path, body)), needle)


def test_a_nan_in_a_profile_file_is_refused(tmp_path):
    doc = tomlkit.parse((ROOT / "firmware" / "config" / "profiles" / "hotline-5s.toml").read_text(encoding="utf-8"))
    doc["timings"]["hold_limit_s"] = float("nan")
    profile = tmp_path / "mine.toml"
    profile.write_text(tomlkit.dumps(doc), encoding="utf-8")
    assert "hold_limit_s = nan" in profile.read_text(encoding="utf-8")
    cfg = config(tmp_path, f'[station]\nprofile = "{profile}"\n')
    assert_refused(run_cli("check-config", cfg), "timings.hold_limit_s: nan is not a finite number")


def test_check_config_fails_on_a_missing_password_file(tmp_path):
    cfg = config(
        tmp_path,
        f'[station]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[mqtt]\nbrokers = ["mqtt://127.0.0.1:1883"]\npassword_file = "{tmp_path / "nope.pass"}"\n',
    )
    proc = run_cli("check-config", cfg)
    assert_refused(proc, "mqtt.password_file:", "nope.pass does not exist")
    # ... and `run` stops on the same problem before it starts anything.
    proc = run_cli("run", "--simulate", "--config", cfg)
    assert_refused(proc, "mqtt.password_file:", "nope.pass does not exist")


def test_check_config_fails_on_a_password_file_others_can_read(tmp_path):
    secret = tmp_path / "mqtt.pass"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    cfg = config(
        tmp_path,
        f'[station]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[mqtt]\nbrokers = ["mqtt://127.0.0.1:1883"]\npassword_file = "{secret}"\n',
    )
    assert_refused(run_cli("check-config", cfg), "mqtt.password_file:", "chmod 600")
    secret.chmod(0o600)
    proc = run_cli("check-config", cfg)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr


def test_check_config_fails_on_missing_tls_files(tmp_path):
    cfg = config(
        tmp_path,
        f'[station]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[mqtt]\nbrokers = ["mqtts://127.0.0.1:8883"]\nca_file = "{tmp_path / "ca.pem"}"\n'
        f'cert_file = "{tmp_path / "c.pem"}"\n',
    )
    assert_refused(
        run_cli("check-config", cfg), "mqtt.ca_file:", "ca.pem does not exist", "mqtt.cert_file:", "needs mqtt.key_file"
    )


def test_check_config_fails_on_a_missing_wav_of_the_wav_backend(tmp_path):
    cfg = config(tmp_path, f'[audio]\nbackend = "wav"\nwav_tx = "{tmp_path / "tx.wav"}"\n')
    assert_refused(run_cli("check-config", cfg), "audio.wav_tx:", "does not exist")


@pytest.mark.parametrize("kind", ["config", "profile"])
def test_toml_nested_5000_deep_is_one_line(tmp_path, kind):
    deep = "a = " + "[" * 5000 + "]" * 5000 + "\n"
    if kind == "config":
        path = config(tmp_path, deep)
    else:
        profile = tmp_path / "deep.toml"
        profile.write_text(deep)
        path = config(tmp_path, f'[station]\nprofile = "{profile}"\n')
    proc = run_cli("check-config", path)
    assert_refused(proc, "nested more than")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_scenario_nested_5000_deep_is_one_line(tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text("inputs = " + "[" * 5000 + "]" * 5000 + "\n")
    proc = run_cli("replay", scenario)
    assert_refused(proc, "s.toml", "nested more than", code=2)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_fifo_as_config_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "station.toml"
    os.mkfifo(fifo)
    assert_refused(run_cli("check-config", fifo), "FIFO")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["replay", "x.toml", "--drain-timeout", "nan"], "--drain-timeout"),
        (["replay", "x.toml", "--drain-timeout", "inf"], "--drain-timeout"),
        (["replay", "x.toml", "--drain-timeout", "-1"], "--drain-timeout"),
        (["calibrate", "--seconds", "nan"], "--seconds"),
        (["calibrate", "--seconds", "0"], "--seconds"),
        (["calibrate", "--seconds", "1e999"], "--seconds"),
    ],
)
def test_cli_number_options_refuse_nan_inf_and_out_of_range(args, needle):
    proc = run_cli(*args)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_command_line_station_id_is_checked_like_the_config(tmp_path):
    proc = run_cli("run", "--simulate", "--station", "a/b")
    assert_refused(proc, "command line", "station.id: 'a/b' must be one MQTT topic level")


# --- as root: the service user must be able to read what the service reads ------------------------


@pytest.fixture
def desk():
    """A directory the service user can enter (pytest's own tmp_path is root's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="hs-check-config-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _installed(tmp_path, secret_owner: str):
    """A desk as install-pi leaves it: state dir owned by the service user, a 0600 password file."""
    nobody = pwd.getpwnam("nobody")
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    tmp_path.chmod(0o755)
    secret = tmp_path / "mqtt.pass"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    if secret_owner == "nobody":
        os.chown(secret, nobody.pw_uid, nobody.pw_gid)
    cfg = config(
        tmp_path,
        f'[station]\nstate_dir = "{state}"\n[mqtt]\nbrokers = ["mqtt://127.0.0.1:1883"]\npassword_file = "{secret}"\n',
    )
    cfg.chmod(0o644)
    return cfg, state


@as_root
def test_as_root_check_config_checks_files_for_the_service_user(desk):
    cfg, state = _installed(desk, secret_owner="root")
    proc = run_cli("check-config", cfg)
    # root could read it, but the service runs as the owner of the state dir and cannot.
    assert_refused(
        proc,
        "mqtt.password_file:",
        "cannot be read by the service user nobody",
        f"the owner of the state directory {state}",
        "root:",
        "mode 0600",
    )


@as_root
def test_as_root_check_config_ok_when_the_service_user_can_read(desk):
    cfg, _state = _installed(desk, secret_owner="nobody")
    proc = run_cli("check-config", cfg)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr


@as_root
def test_as_root_a_config_the_service_cannot_read_is_refused(desk):
    cfg, _state = _installed(desk, secret_owner="nobody")
    cfg.chmod(0o640)  # root:root 0640, what `sudo calibrate` used to leave behind
    assert_refused(run_cli("check-config", cfg), "config:", "station.toml cannot be read by the service user nobody")


@as_root
def test_as_root_a_state_dir_file_the_service_cannot_write_is_refused(desk):
    cfg, state = _installed(desk, secret_owner="nobody")
    (state / "outbox.db").write_bytes(b"")  # left behind by `sudo headset-station run`
    assert_refused(
        run_cli("check-config", cfg), "station.state_dir:", "outbox.db cannot be written by the service user"
    )
