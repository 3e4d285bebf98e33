"""The technician's view of a badly wired desk: mains hum and a sound card's DC offset in
`selftest` and `calibrate` (firmware.analysis.measure).

Hum is sound: at -50 dBFS and above it makes a quiet line read `noisy` and hides quiet
speech, so selftest fails the channel and says what to check; calibrate points it out
instead of raising the noise threshold over it in silence. A DC offset is not sound: the
analyser takes it out, and the report says so.
"""

import subprocess

import numpy as np
import pytest

from firmware.analysis.measure import MAX_HUM_DBFS, mains_hum, measure
from firmware.config.profiles import load_profile
from firmware.config.settings import Settings
from firmware.sim import speech as sp
from firmware.tech.calibrate import propose
from firmware.tech.selftest import run_selftest

RATE_HZ = 16000
N = int(3.5 * RATE_HZ)


def hum(level_dbfs: float, mains_hz: float = 50.0, n: int = N) -> np.ndarray:
    """A ground loop's buzz: the mains frequency and some harmonics, at `level_dbfs` RMS."""
    t = np.arange(n) / RATE_HZ
    x = sum(np.sin(2 * np.pi * mains_hz * k * t + k) / k for k in (1, 2, 3, 5))
    return sp.scale_to(x, level_dbfs, RATE_HZ, active=False)


def talk(level_dbfs: float = -30.0, name: str = "vm-intro", n: int = N) -> np.ndarray:
    x = sp.noise("pink", n, RATE_HZ, seed=2, level_dbfs=-66.0)
    p = sp.scale_to(sp.load_prompt(name, RATE_HZ), level_dbfs, RATE_HZ)[: n - 3200]
    x[3200 : 3200 + len(p)] += p
    return x


def selftest(tmp_path, rx: np.ndarray) -> dict:
    tx = sp.write(tmp_path / "tx.wav", talk(-26.0, "demo-thanks"), RATE_HZ)
    rx = sp.write(tmp_path / "rx.wav", rx, RATE_HZ)
    settings = Settings().replace(audio={"backend": "wav", "rate_hz": RATE_HZ, "wav_tx": str(tx), "wav_rx": str(rx)})
    lines = []
    rc = run_selftest(settings, simulate=True, interactive=False, out=lines.append)
    return {"rc": rc, "rx": next(line for line in lines if line.split(":")[0].endswith("audio rx"))}


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_loud_hum_fails_the_channel_and_says_what_to_check(tmp_path, mains_hz):
    got = selftest(tmp_path, talk() + hum(-42.0, mains_hz))
    assert got["rc"] == 1
    assert got["rx"].startswith("FAIL audio rx:") and f"mains hum {int(mains_hz)} Hz at -42" in got["rx"]
    assert "ground loop" in got["rx"] and "\n" not in got["rx"]


def test_quiet_hum_passes_and_is_reported(tmp_path):
    got = selftest(tmp_path, talk() + hum(-62.0))
    assert got["rc"] == 0 and got["rx"].startswith("PASS audio rx:") and "mains hum 50 Hz at -6" in got["rx"]


def test_a_dc_offset_is_reported_and_does_not_move_the_levels(tmp_path):
    plain = measure(sp.to_int16(talk()), RATE_HZ)
    offset = measure(sp.to_int16(talk() + 900), RATE_HZ)
    assert offset.dc_counts == 900 and "DC offset 900 counts (taken out)" in offset.line()
    assert (offset.level_dbfs, offset.noise_dbfs, offset.speech_dbfs) == pytest.approx(
        (plain.level_dbfs, plain.noise_dbfs, plain.speech_dbfs), abs=0.2
    )
    assert plain.hum is None and plain.dc_counts == 0 and "DC" not in plain.line()
    got = selftest(tmp_path, talk() + 900)
    assert got["rc"] == 0 and "DC offset 900 counts" in got["rx"]


def test_hum_level_is_measured():
    """Within 2 dB: the weakest harmonics of a quiet hum sink into the noise and are not counted."""
    for level in (-40.0, -55.0, -65.0):
        for mains_hz in (50.0, 60.0):
            got = mains_hum(sp.to_int16(talk() + hum(level, mains_hz)), RATE_HZ)
            assert got is not None and got[0] == mains_hz and got[1] == pytest.approx(level, abs=2.0)


def test_voices_are_not_hum():
    """A voice holds no pitch for a second in every second: 3 s windows of recorded prompts
    back to back (about ten minutes) and synthetic voices pitched low show no hum."""
    names = sp.prompt_names()[::3]
    x = np.concatenate(
        [np.concatenate((sp.scale_to(sp.load_prompt(n, RATE_HZ), -12.0, RATE_HZ), np.zeros(3200))) for n in names]
    )
    x += sp.noise("pink", len(x), RATE_HZ, seed=1, level_dbfs=-70.0)
    windows = [x[i : i + 3 * RATE_HZ] for i in range(0, len(x) - 3 * RATE_HZ, 3 * RATE_HZ)]
    assert len(windows) > 150
    for voice in ("en-us", "de", "cmn"):
        out = subprocess.run(
            [
                "espeak-ng",
                "-v",
                voice,
                "-p",
                "0",
                "-s",
                "150",
                "--stdout",
                "Thank you for calling. How can I help you today? Please hold the line while I look at your account.",
            ],
            capture_output=True,
            check=True,
        ).stdout
        pcm = np.frombuffer(out[44:], dtype="<i2").astype(np.float64)  # espeak-ng writes a 44-byte header, 22050 Hz
        y = sp.scale_to(sp.resample(pcm, 22050, RATE_HZ), -12.0, RATE_HZ)
        windows += [y[i : i + 3 * RATE_HZ] for i in range(0, len(y) - 3 * RATE_HZ, RATE_HZ // 2)]
    found = [mains_hum(sp.to_int16(w), RATE_HZ) for w in windows]
    assert [h for h in found if h is not None] == []


def test_calibrate_points_out_hum_instead_of_hiding_it():
    settings = Settings()
    profile = load_profile(settings.station.profile)
    quiet = {
        "tx": measure(sp.to_int16(sp.noise("white", N, RATE_HZ, seed=1, level_dbfs=-70.0)), RATE_HZ),
        "rx": measure(sp.to_int16(sp.noise("pink", N, RATE_HZ, seed=2, level_dbfs=-66.0) + hum(-44.0)), RATE_HZ),
    }
    speech = {
        "tx": measure(sp.to_int16(talk(-26.0)), RATE_HZ),
        "rx": measure(sp.to_int16(talk(-30.0) + hum(-44.0)), RATE_HZ),
    }
    _updates, notes = propose(settings, profile, quiet, speech)
    hum_notes = [n for n in notes if "mains hum" in n]
    assert len(hum_notes) == 1 and hum_notes[0].startswith("rx: mains hum (50 Hz) at -44") and "ground" in hum_notes[0]
    assert MAX_HUM_DBFS == -50.0
