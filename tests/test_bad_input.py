"""Bad input gets one clear line naming the file or field, a non-zero exit, and no traceback."""

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from firmware.sim.wav import write_wav

CLI = [sys.executable, "-m", "firmware.runtime.cli"]
ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, cwd=None):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd or ROOT, timeout=120)


def assert_one_line_error(proc, code, *needles):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def scenario(tmp_path, body, name="s.toml"):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture
def voice_wav(tmp_path):
    rng = np.random.default_rng(1)
    return write_wav(tmp_path / "rx.wav", 16000, (rng.standard_normal(16000) * 1000).astype(np.int16))


def test_missing_scenario(tmp_path):
    assert_one_line_error(run_cli("replay", tmp_path / "nope.toml"), 2, "nope.toml", "not found")


def test_scenario_unknown_key(tmp_path):
    p = scenario(tmp_path, 'profil = "hotline-5s"\n')
    assert_one_line_error(run_cli("replay", p), 2, "s.toml", "unknown key 'profil'")


def test_scenario_negative_time(tmp_path):
    p = scenario(tmp_path, '[[inputs]]\nt = -1.0\nhook = "off"\n')
    assert_one_line_error(run_cli("replay", p), 2, "s.toml", "inputs[0].t", "negative")


def test_scenario_absurd_time(tmp_path):
    p = scenario(tmp_path, '[[inputs]]\nt = 1e308\nhook = "off"\n')
    assert_one_line_error(run_cli("replay", p), 2, "inputs[0].t", "24-hour")


def test_scenario_unknown_input(tmp_path):
    p = scenario(tmp_path, "[[inputs]]\nt = 1.0\nflash = true\n")
    assert_one_line_error(run_cli("replay", p), 2, "s.toml", "inputs[0].flash", "unknown input")


def test_scenario_bad_hook_value(tmp_path):
    p = scenario(tmp_path, '[[inputs]]\nt = 1.0\nhook = "up"\n')
    assert_one_line_error(run_cli("replay", p), 2, "inputs[0].hook")


def test_scenario_not_toml(tmp_path):
    p = scenario(tmp_path, "this is [not toml\n")
    assert_one_line_error(run_cli("replay", p), 2, "s.toml", "not valid TOML")


def test_missing_wav(tmp_path):
    p = scenario(tmp_path, '[audio]\nrx = "gone.wav"\n')
    assert_one_line_error(run_cli("replay", p), 2, "gone.wav", "not found")


def test_stereo_wav(tmp_path):
    with wave.open(str(tmp_path / "st.wav"), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0" * 6400)
    p = scenario(tmp_path, '[audio]\nrx = "st.wav"\n')
    assert_one_line_error(run_cli("replay", p), 2, "st.wav", "2 channels", "mono")


def test_wav_bad_rate(tmp_path):
    write_wav(tmp_path / "r.wav", 44100, np.zeros(4410, dtype=np.int16))
    p = scenario(tmp_path, '[audio]\ntx = "r.wav"\n')
    assert_one_line_error(run_cli("replay", p), 2, "r.wav", "44100 Hz")


def test_wav_8bit(tmp_path):
    with wave.open(str(tmp_path / "b.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(1), w.setframerate(8000), w.writeframes(b"\x80" * 800)
    p = scenario(tmp_path, '[audio]\nrx = "b.wav"\n')
    assert_one_line_error(run_cli("replay", p), 2, "b.wav", "8-bit", "16-bit")


def test_not_a_wav(tmp_path):
    (tmp_path / "x.wav").write_text("hello")
    p = scenario(tmp_path, '[audio]\nrx = "x.wav"\n')
    assert_one_line_error(run_cli("replay", p), 2, "x.wav", "not a PCM WAV")


def test_unknown_profile(tmp_path, voice_wav):
    p = scenario(tmp_path, 'profile = "nosuch"\n[audio]\nrx = "rx.wav"\n')
    assert_one_line_error(run_cli("replay", p), 78, "unknown profile 'nosuch'")


def test_config_wrong_type_and_range(tmp_path):
    cfg = tmp_path / "station.toml"
    cfg.write_text('[audio]\nrate_hz = 44100\nframe_ms = "30"\n[profile]\npause_s = -1\n[mqtt]\nbogus = 1\n')
    proc = run_cli("check-config", cfg)
    assert proc.returncode == 78
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert len(lines) == 4, lines
    joined = "\n".join(lines)
    for needle in (
        "audio.rate_hz: 44100 is not one of",
        "audio.frame_ms: expected int",
        "profile.pause_s",
        "mqtt.bogus: unknown key",
    ):
        assert needle in joined
    assert all(line.startswith(str(cfg)) for line in lines)


def test_config_cross_check(tmp_path):
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        '[audio]\ntx_channel = 1\nrx_channel = 1\n[leds]\nrgb_pins = [1, 2]\n[mqtt]\nbrokers = ["tcp://x"]\n'
    )
    proc = run_cli("check-config", cfg)
    assert proc.returncode == 78
    assert "audio.rx_channel: must differ" in proc.stderr
    assert "leds.rgb_pins: expected three BCM pins" in proc.stderr
    assert "mqtt.brokers: 'tcp://x' is not an mqtt://" in proc.stderr


def test_frame_and_buffer_need_not_align(tmp_path):
    # The analyser keeps partial frames between capture blocks, so any block size works.
    cfg = tmp_path / "station.toml"
    cfg.write_text("[audio]\nframe_ms = 20\nbuffer_ms = 30\n")
    assert run_cli("check-config", cfg).returncode == 0


def test_config_ok(tmp_path):
    cfg = tmp_path / "station.toml"
    cfg.write_text('[station]\nid = "desk-7"\nprofile = "service-2s"\n[profile]\nhold_limit_s = 50\n')
    proc = run_cli("check-config", cfg)
    assert proc.returncode == 0, proc.stderr
    assert "desk-7" in proc.stdout and "service-2s" in proc.stdout and "hold limit 50 s" in proc.stdout


def test_replay_with_bad_config(tmp_path, voice_wav):
    cfg = tmp_path / "station.toml"
    cfg.write_text("[station]\nid = 5\n")
    p = scenario(tmp_path, '[audio]\nrx = "rx.wav"\n')
    assert_one_line_error(run_cli("replay", p, "--config", cfg), 78, "station.toml", "station.id: expected str")


def test_bad_broker_url(tmp_path, voice_wav):
    p = scenario(tmp_path, '[audio]\nrx = "rx.wav"\n')
    assert_one_line_error(run_cli("replay", p, "--broker", "http://x"), 78, "--broker")
