"""calibrate: measurements from real recorded speech, proposed gains, minimal TOML edits."""

import tomllib

import numpy as np
import pytest
from fixtures_pulse import speech_wav

from firmware.analysis.measure import measure
from firmware.config.edit import set_keys
from firmware.config.settings import Settings, load_settings
from firmware.sim.wav import read_wav
from firmware.tech.calibrate import TARGET_SPEECH_DBFS, run_calibrate

CONFIG = """# Desk 12, second floor
[station]
id = "desk-12"   # asset tag 4711

[audio]
device = "USB Audio"  # the Plantronics DA80
tx_gain_db = 0.0 # set by calibrate

[gpio]
hook_pin = 17
"""


def test_set_keys_keeps_comments_and_other_keys():
    text = set_keys(CONFIG, {("audio", "tx_gain_db"): 6.5, ("audio", "rx_gain_db"): -3.0,
                             ("profile", "noise_dbfs"): -38.0})
    assert "# Desk 12, second floor" in text and "# asset tag 4711" in text
    assert 'tx_gain_db = 6.5 # set by calibrate' in text
    assert text.index("rx_gain_db = -3.0") < text.index("[gpio]"), "appended inside its own section"
    data = tomllib.loads(text)
    assert data["audio"] == {"device": "USB Audio", "tx_gain_db": 6.5, "rx_gain_db": -3.0}
    assert data["profile"] == {"noise_dbfs": -38.0} and data["gpio"] == {"hook_pin": 17}


def _recorder(quiet_tx, quiet_rx, speech_tx, speech_rx, rate_hz):
    takes = iter([(quiet_tx, quiet_rx), (speech_tx, speech_rx)])

    def record(settings, seconds):
        tx, rx = next(takes)
        return {"tx": measure(tx, rate_hz), "rx": measure(rx, rate_hz)}
    return record


def test_gains_bring_recorded_speech_to_the_target_and_are_written(tmp_path):
    rate_hz, speech = read_wav(speech_wav())
    rng = np.random.default_rng(1)
    hiss = lambda dbfs: (rng.standard_normal(len(speech)) * 32768 * 10 ** (dbfs / 20) * 0.707).astype(np.int16)
    quiet_speech = (speech * 0.05).astype(np.int16)               # a customer line 26 dB quieter
    config = tmp_path / "station.toml"
    config.write_text(CONFIG)
    settings = load_settings(config).replace(audio={"rate_hz": rate_hz})
    lines = []
    takes = [hiss(-70), hiss(-62), speech + hiss(-70), quiet_speech + hiss(-62)]
    rc = run_calibrate(settings, config, seconds=3, assume_yes=True, out=lines.append,
                       recorder=_recorder(*takes, rate_hz))
    assert rc == 0, lines
    written = load_settings(config)
    tx, rx = measure(takes[2], rate_hz), measure(takes[3], rate_hz)
    # The gain is limited by the recording's peak; within that, it aims at the target.
    assert written.audio.tx_gain_db == pytest.approx(min(TARGET_SPEECH_DBFS - tx.speech_dbfs,
                                                         -1 - tx.peak_dbfs), abs=0.5)
    assert written.audio.rx_gain_db == pytest.approx(TARGET_SPEECH_DBFS - rx.speech_dbfs, abs=0.5)
    assert written.audio.rx_gain_db - written.audio.tx_gain_db > 20
    # A -62 dBFS hiss raised by ~26 dB sits above the default -45 threshold's margin: threshold raised.
    assert written.profile["noise_dbfs"] > -45
    assert written.station.id == "desk-12" and "# asset tag 4711" in config.read_text()
    assert (tmp_path / "station.toml.bak").read_text() == CONFIG


def test_declined_or_silent_channels_change_nothing(tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(CONFIG)
    zeros = np.zeros(24000, np.int16)
    lines = []
    rc = run_calibrate(load_settings(config), config, assume_yes=True, out=lines.append,
                       recorder=_recorder(zeros, zeros, zeros, zeros, 8000))
    assert rc == 0 and config.read_text() == CONFIG
    assert any("no test phrase heard" in l for l in lines)
    rate_hz, speech = read_wav(speech_wav())
    rc = run_calibrate(load_settings(config).replace(audio={"rate_hz": rate_hz}), config, out=lines.append,
                       ask=lambda prompt: "n", recorder=_recorder(zeros, zeros, speech, speech, rate_hz))
    assert rc == 0 and config.read_text() == CONFIG and lines[-1] == "calibrate: nothing written"


def test_wav_backend_end_to_end_without_a_config_file(tmp_path):
    rate_hz, _ = read_wav(speech_wav())
    settings = Settings().replace(audio={"backend": "wav", "wav_tx": str(speech_wav()), "rate_hz": rate_hz,
                                         "buffer_ms": 60})
    lines = []
    assert run_calibrate(settings, None, seconds=1.0, assume_yes=True, out=lines.append) == 0
    assert any(l.startswith("Proposed: [audio] tx_gain_db") for l in lines), lines
    assert "no --config given" in lines[-1]
