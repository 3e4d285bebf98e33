"""Speech decisions through the codecs real calls cross: GSM 06.10 (full rate; SIP trunks, and
the codec Asterisk stores prompts in) and AMR-NB at its highest and lowest rates (12.2 and
4.75 kbit/s: a mobile caller), encoded and decoded by sox, beside G.711 mu-law.

The analyser must find the same speech through them: each utterance's start within a frame
or two, the talk time within 5% (a codec may stretch a pause inside a sentence past the 300 ms
hangover and split one utterance in two; the time is what the rules use), the line `ok`, and
nothing at all on a coded line with only its noise on it.
"""

import subprocess

import numpy as np
import pytest

from firmware.config.profiles import load_profile
from firmware.config.settings import Settings
from firmware.runtime.analyze import analyze_pcm
from firmware.sim import speech as sp
from firmware.sim.wav import read_wav

RATE_HZ = 8000
SETTINGS = Settings()
PROFILE = load_profile(SETTINGS.station.profile)
PROMPTS = [(2.0, "vm-nobodyavail"), (10.0, "pls-hold-while-try"), (20.0, "demo-thanks")]
CODECS = {  # sox's file type, and the encoder's options
    "mu-law": ("ul", []),
    "gsm": ("gsm", []),
    "amr-nb-12.2": ("amr-nb", ["-C", "7"]),
    "amr-nb-4.75": ("amr-nb", ["-C", "0"]),
}


def through(codec: str, x: np.ndarray, tmp_path) -> np.ndarray:
    """`x` (8 kHz, int16 units) encoded and decoded by sox."""
    kind, options = CODECS[codec]
    raw = ["-r", "8000", "-c", "1"] if kind == "ul" else []  # (a headerless format)
    src, coded, out = tmp_path / "in.wav", tmp_path / f"coded.{kind}", tmp_path / "out.wav"
    sp.write(src, x, RATE_HZ)
    subprocess.run(["sox", str(src), *raw, "-t", kind, *options, str(coded)], check=True, capture_output=True)
    subprocess.run(
        ["sox", *raw, "-t", kind, str(coded), "-b", "16", "-e", "signed-integer", str(out)],
        check=True,
        capture_output=True,
    )
    rate_hz, y = read_wav(out)
    assert rate_hz == RATE_HZ and abs(len(y) - len(x)) < RATE_HZ // 10
    return y


def decided(pcm: np.ndarray):
    a = analyze_pcm(pcm, RATE_HZ, SETTINGS, PROFILE, "rx")
    return [(s, e) for s, e, _ in a.segments], [c["condition"] for c in a.line]


@pytest.fixture(scope="module")
def line():
    n = 30 * RATE_HZ
    x = sp.noise("pink", n, RATE_HZ, seed=3, level_dbfs=-60.0)
    for start_s, name in PROMPTS:
        p = sp.scale_to(sp.load_prompt(name, RATE_HZ), -26.0, RATE_HZ)
        x[int(start_s * RATE_HZ) : int(start_s * RATE_HZ) + len(p)] += p
    return x


@pytest.mark.parametrize("codec", list(CODECS))
def test_the_same_speech_through_a_codec(codec, line, tmp_path):
    clean, clean_line = decided(sp.to_int16(line))
    assert len(clean) == len(PROMPTS) and clean_line == ["ok"]
    coded, coded_line = decided(through(codec, line, tmp_path))
    assert coded_line == ["ok"], codec
    for start, _ in clean:  # every utterance starts where it does on the clean line
        assert min(abs(s - start) for s, _ in coded) <= 0.06, (codec, coded)
    assert all(any(a - 0.35 <= s and e <= b + 0.35 for a, b in clean) for s, e in coded), (codec, coded)
    talk = sum(e - s for s, e in clean)
    assert sum(e - s for s, e in coded) == pytest.approx(talk, rel=0.05), (codec, coded)


@pytest.mark.parametrize("codec", list(CODECS))
def test_a_coded_line_with_only_its_noise_is_silent(codec, tmp_path):
    n = 20 * RATE_HZ
    for kind, level_dbfs in (("pink", -50.0), ("white", -60.0)):
        noise = sp.noise(kind, n, RATE_HZ, seed=5, level_dbfs=level_dbfs)
        segments, _ = decided(through(codec, noise, tmp_path))
        assert segments == [], (codec, kind, segments)
