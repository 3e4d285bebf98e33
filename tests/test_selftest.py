"""selftest in simulate / non-interactive mode: one line per part, non-zero exit on failure.

The audio check passes a channel only with speech on it, simulated or not (issue 12 item 14:
a tap that reads only its noise floor, -66 dBFS with the VAD's 3 %, used to pass, and the
simulated silence source passed by design). Real recorded speech (the Asterisk prompts) on
the WAV source stands in for the technician and the test call.
"""

import pytest

from firmware.config.settings import Settings
from firmware.sim import speech
from firmware.tech.selftest import MIN_SPEECH_DBFS, run_selftest


def run(settings, **kw):
    lines = []
    rc = run_selftest(settings, out=lines.append, **kw)
    return rc, lines


def test_simulated_desk_passes_every_part(tmp_path):
    rc, lines = run(speaking_desk(tmp_path), simulate=True, interactive=False)
    text = "\n".join(lines)
    assert rc == 0, text
    for part in ("leds", "hook", "mute", "audio tx", "audio rx"):
        assert f"PASS {part}:" in text
    assert "SKIP broker: no broker configured" in text
    assert lines[-1] == "selftest: all parts passed"


def test_unreachable_broker_and_missing_sound_card_fail_with_one_clear_line_each():
    settings = Settings().replace(
        mqtt={"brokers": ["mqtt://127.0.0.1:9"]},
        audio={"backend": "pyaudio", "device": "no-such-usb-card"},
        gpio={"pin_factory": "mock"},
    )
    rc, lines = run(settings, interactive=False)
    assert rc == 1
    fails = [l for l in lines if l.startswith("FAIL")]
    assert any(l.startswith("FAIL broker mqtt://127.0.0.1:9: connection refused") for l in fails), lines
    assert any(l.startswith("FAIL audio:") and "no-such-usb-card" in l for l in fails), lines
    assert "FAILED: " in lines[-1]


def test_missing_tls_file_is_a_fail_line_not_a_crash():
    settings = Settings().replace(mqtt={"brokers": ["mqtts://127.0.0.1:9"], "ca_file": "/nonexistent/ca.crt"})
    rc, lines = run(settings, simulate=True, interactive=False)
    assert rc == 1
    assert any(l.startswith("FAIL broker mqtts://127.0.0.1:9:") and "/nonexistent/ca.crt" in l for l in lines), lines


def test_broker_check_against_a_real_mosquitto(mqtt_broker, tmp_path):
    mosquitto_url = mqtt_broker.url
    settings = speaking_desk(tmp_path).replace(mqtt={"brokers": [mosquitto_url]})
    rc, lines = run(settings, simulate=True, interactive=False)
    assert rc == 0 and any(l.startswith(f"PASS broker {mosquitto_url}: connected") for l in lines), lines


RATE_HZ = 16000


def track(tmp_path, name, level_dbfs=None, noise_dbfs=-66.0, seconds=3.5, seed=1):
    """A WAV of speech at `level_dbfs` (None: none) over pink noise at `noise_dbfs`."""
    n = int(seconds * RATE_HZ)
    x = speech.noise("pink", n, RATE_HZ, seed=seed, level_dbfs=noise_dbfs)
    if level_dbfs is not None:
        p = speech.scale_to(speech.load_prompt("vm-intro", RATE_HZ), level_dbfs, RATE_HZ)
        start = int(0.2 * RATE_HZ)
        m = min(len(p), n - start)
        x[start : start + m] += p[:m]
    return str(speech.write(tmp_path / f"{name}.wav", x, RATE_HZ))


def wav_settings(tx, rx):
    return Settings().replace(audio={"backend": "wav", "rate_hz": RATE_HZ, "wav_tx": tx, "wav_rx": rx})


def line_of(lines, part):
    return next(line for line in lines if line.split(":")[0].split(None, 1)[1:] == [part])


def speaking_desk(tmp_path):
    """A simulated desk whose technician speaks and whose test call plays."""
    return wav_settings(track(tmp_path, "tx", -26.0), track(tmp_path, "rx", -30.0, seed=2))


def test_speech_on_both_channels_passes(tmp_path):
    rc, lines = run(speaking_desk(tmp_path), simulate=True, interactive=False)
    assert rc == 0, lines
    assert line_of(lines, "audio tx").startswith("PASS") and line_of(lines, "audio rx").startswith("PASS")


def test_a_channel_with_only_its_noise_floor_fails(tmp_path):
    settings = wav_settings(track(tmp_path, "tx", -26.0), track(tmp_path, "rx", None))
    rc, lines = run(settings, simulate=True, interactive=False)
    assert rc == 1
    assert line_of(lines, "audio tx").startswith("PASS")
    rx = line_of(lines, "audio rx")
    assert rx.startswith("FAIL audio rx:") and "only a noise floor" in rx and "-45 dBFS" in rx, rx
    assert lines[-1] == "selftest: FAILED: audio rx"


@pytest.mark.parametrize("noise_dbfs", [-55.0, -40.0])
def test_loud_noise_without_speech_fails_too(tmp_path, noise_dbfs):
    settings = wav_settings(track(tmp_path, "tx", None, noise_dbfs=noise_dbfs), track(tmp_path, "rx", -30.0))
    rc, lines = run(settings, simulate=True, interactive=False)
    assert rc == 1 and line_of(lines, "audio tx").startswith("FAIL"), lines


def test_speech_too_quiet_fails(tmp_path):
    settings = wav_settings(track(tmp_path, "tx", MIN_SPEECH_DBFS - 8), track(tmp_path, "rx", -30.0))
    rc, lines = run(settings, simulate=True, interactive=False)
    assert rc == 1 and line_of(lines, "audio tx").startswith("FAIL"), lines


def test_simulated_silence_fails_like_a_dead_sound_card():
    rc, lines = run(Settings(), simulate=True, interactive=False)  # no WAVs: the silence source
    assert rc == 1
    for ch in ("tx", "rx"):
        assert line_of(lines, f"audio {ch}") == f"FAIL audio {ch}: digital silence (channel not connected?)"
    assert lines[-1] == "selftest: FAILED: audio tx, audio rx"
