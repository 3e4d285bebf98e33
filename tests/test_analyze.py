"""`headset-station analyze`: the analyser's decisions for a recording, and its errors."""

import json
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import soxr
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from firmware.errors import InputError
from firmware.sim import g711, speech
from firmware.sim.wav import read_recording, read_wav

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
PROMPTS = [(1.0, "vm-nobodyavail"), (6.0, "pls-hold-while-try"), (11.0, "demo-thanks")]


def analyze(*args):
    return subprocess.run(
        [sys.executable, "-m", "firmware.runtime.cli", "analyze", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    """rx: three prompts at known places, then a busy tone from 17 s; tx: the agent between them."""
    d = tmp_path_factory.mktemp("analyze")
    n = 22 * RATE
    rx, tx = np.zeros(n), np.zeros(n)
    spans = []
    for start_s, name in PROMPTS:
        p = speech.scale_to(speech.load_prompt(name, RATE), -26.0, RATE)
        i = int(start_s * RATE)
        rx[i : i + len(p)] += p
        nz = np.flatnonzero(np.abs(p) > 30)
        spans.append((start_s + nz[0] / RATE, start_s + (nz[-1] + 1) / RATE))
    busy = speech.tone([450.0], (0.35, 0.35), 4.0, RATE, level_dbfs=-20.0)
    rx[17 * RATE : 17 * RATE + len(busy)] += busy
    agent = speech.scale_to(speech.load_prompt("vm-intro", RATE), -24.0, RATE)[: int(1.6 * RATE)]
    tx[int(4.2 * RATE) : int(4.2 * RATE) + len(agent)] += agent
    rx += speech.noise("white", n, RATE, seed=1, level_dbfs=-62.0)
    tx += speech.noise("pink", n, RATE, seed=2, level_dbfs=-66.0)
    return speech.write(d / "rx.wav", rx, RATE), speech.write(d / "tx.wav", tx, RATE), spans, d


def test_segments_tones_and_json(call):
    rx, _, spans, _ = call
    proc = analyze(rx, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["channel"] == "rx" and out["rate_hz"] == RATE and out["duration_s"] == pytest.approx(22.0)
    segs = [(s["start_s"], s["end_s"]) for s in out["segments"]]
    assert len(segs) == len(spans)
    for (a, b), (ta, tb) in zip(segs, spans):
        assert a == pytest.approx(ta, abs=0.1) and b == pytest.approx(tb, abs=0.35)
    assert [t["tone"] for t in out["tones"]][:1] and out["tones"][0]["tone"].startswith("busy")
    assert 17.0 < out["tones"][0]["t"] < 20.0
    assert out["line"] and out["line"][0]["condition"] in ("ok", "low")
    assert out["echo"] is None  # no --tx
    # the readable form says the same, one line per decision
    text = analyze(rx).stdout.splitlines()
    assert text[0].startswith(f"{rx}: rx, 16000 Hz, 22.00 s; 3 utterances")
    assert sum(" speech " in line for line in text) == 3 and sum(" tone " in line for line in text) == 1


def test_agent_channel(call):
    rx, tx, _, _ = call
    out = json.loads(analyze(tx, "--channel", "tx", "--json").stdout)
    assert out["channel"] == "tx" and len(out["segments"]) == 1 and out["tones"] == []
    seg = out["segments"][0]
    assert seg["start_s"] == pytest.approx(4.2, abs=0.3) and seg["end_s"] == pytest.approx(5.8, abs=0.35)
    # with the agent's channel given, rx is analysed beside it (coupling estimate when the pipeline makes one)
    both = json.loads(analyze(rx, "--tx", tx, "--json").stdout)
    assert len(both["segments"]) == 3


def test_the_echo_coupling_with_the_agents_channel(call):
    """rx carrying the agent's voice 18 dB down and 40 ms late: `--tx` gives the coupling."""
    _, tx_path, _, d = call
    _, tx = read_wav(tx_path)
    _, rx = read_wav(call[0])
    lag = int(0.04 * RATE)
    echo = np.zeros(len(tx))
    echo[lag:] = tx[:-lag] * 10 ** (-18.0 / 20)
    path = speech.write(d / "rx-echo.wav", rx + echo, RATE)
    out = json.loads(analyze(path, "--tx", tx_path, "--json").stdout)
    assert out["echo"] is not None, out
    assert out["echo"]["coupling_db"] == pytest.approx(-18.0, abs=3.0) and out["echo"]["delay_ms"] == pytest.approx(
        40, abs=15
    )
    assert len(out["segments"]) == len(PROMPTS)  # the echo is not the customer
    assert any(line.startswith("echo    coupling_db -") for line in analyze(path, "--tx", tx_path).stdout.splitlines())


def test_same_result_in_live_blocks(call):
    rx, _, _, _ = call
    default = json.loads(analyze(rx, "--json").stdout)
    assert json.loads(analyze(rx, "--json", "--block-ms", 30).stdout) == default


def riff(
    tag: int, channels: int, rate_hz: int, bits: int, frames: bytes, *, extensible=False, before_data=b"", size=None
):
    """A WAV file's bytes as recorders write them: any format tag, the WAVE_FORMAT_EXTENSIBLE
    form, extra chunks before the data, a data size left at 0xFFFFFFFF by a stopped recorder."""
    width = 1 if tag in (6, 7) else (bits + 7) // 8
    align = channels * width
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate_hz, rate_hz * align, align, bits)
    if extensible:
        fmt += struct.pack("<HHIH", 22, bits, 0, tag) + bytes.fromhex("000000001000800000aa00389b71")
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + before_data
    body += b"data" + struct.pack("<I", len(frames) if size is None else size) + frames + b"\0" * (len(frames) & 1)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pcm24(x: np.ndarray) -> bytes:
    return np.frombuffer((speech.to_int16(x).astype("<i4") << 8).tobytes(), np.uint8).reshape(-1, 4)[:, :3].tobytes()


def test_g711_codes():
    assert list(g711.mulaw_decode(np.array([0xFF, 0x7F, 0x80, 0x00], np.uint8))) == [0, 0, 32124, -32124]
    assert list(g711.alaw_decode(np.array([0xD5, 0x55, 0xAA, 0x2A], np.uint8))) == [8, -8, 32256, -32256]
    x = np.arange(-32768, 32768)
    for encode, decode in ((g711.mulaw_encode, g711.mulaw_decode), (g711.alaw_encode, g711.alaw_decode)):
        err = np.abs(decode(encode(x)).astype(int) - x)
        assert (err <= np.maximum(np.abs(x), 64) / 8).all()  # within half a segment step everywhere
        codes = np.arange(256, dtype=np.uint8)
        assert (decode(encode(decode(codes))) == decode(codes)).all()


def test_recordings_as_telephone_systems_write_them(call):
    """Both sides of the call in one file (rx,tx or tx,rx), G.711 at 8 kHz, 44.1 kHz float,
    24-bit WAVE_FORMAT_EXTENSIBLE, a LIST chunk, an unfinished data size: the same decisions."""
    rx_path, tx_path, spans, d = call
    _, rx = read_wav(rx_path)
    _, tx = read_wav(tx_path)
    both = json.loads(analyze(rx_path, "--tx", tx_path, "--json").stdout)
    # one 16-bit stereo file, split exactly: the same result as the two mono files, echo included
    info = b"LIST" + struct.pack("<I", 11) + b"INFOISFTab\0" + b"\0"
    (d / "call.wav").write_bytes(riff(1, 2, RATE, 16, np.stack([tx, rx], 1).tobytes(), before_data=info))
    out = json.loads(analyze(d / "call.wav", "--channels", "tx,rx", "--json").stdout)
    assert out["segments"] == both["segments"] and out["echo"] == both["echo"] and out["line"] == both["line"]
    assert out["source"] == "16-bit PCM, 16000 Hz, 2 channels"
    agent = json.loads(analyze(d / "call.wav", "--channels", "tx,rx", "--channel", "tx", "--json").stdout)
    assert len(agent["segments"]) == 1 and agent["segments"][0]["start_s"] == pytest.approx(4.2, abs=0.3)
    rx8, tx8 = soxr.resample(rx.astype(float), RATE, 8000), soxr.resample(tx.astype(float), RATE, 8000)
    rx44 = soxr.resample(rx.astype(float), RATE, 44100)
    files = {
        "mulaw.wav": (
            riff(7, 2, 8000, 8, g711.mulaw_encode(np.stack([speech.to_int16(rx8), speech.to_int16(tx8)], 1)).tobytes()),
            "mu-law, 8000 Hz, 2 channels",
        ),
        "alaw.wav": (
            riff(6, 1, 8000, 8, g711.alaw_encode(speech.to_int16(rx8)).tobytes()),
            "A-law, 8000 Hz, 1 channel",
        ),
        "float44.wav": (
            riff(3, 1, 44100, 32, (rx44 / 32768.0).astype("<f4").tobytes()),
            "32-bit float, 44100 Hz, 1 channel, resampled to 48000 Hz",
        ),
        "ext24.wav": (riff(1, 1, RATE, 24, pcm24(rx), extensible=True), "24-bit PCM, 16000 Hz, 1 channel"),
        "stopped.wav": (
            riff(1, 1, RATE, 16, speech.to_int16(rx).tobytes(), size=0xFFFFFFFF),
            "16-bit PCM, 16000 Hz, 1 channel",
        ),
    }
    for name, (data, source) in files.items():
        (d / name).write_bytes(data)
        proc = analyze(d / name, "--json", *(["--channels", "rx,tx"] if "2 channels" in source else []))
        assert proc.returncode == 0, (name, proc.stderr)
        out = json.loads(proc.stdout)
        assert out["source"] == source and out["duration_s"] == pytest.approx(22.0, abs=0.01), name
        segs = [(s["start_s"], s["end_s"]) for s in out["segments"]]
        assert len(segs) == len(spans), (name, segs)
        for (a, b), (ta, tb) in zip(segs, spans):
            assert a == pytest.approx(ta, abs=0.1) and b == pytest.approx(tb, abs=0.35), name
    text = analyze(d / "mulaw.wav", "--channels", "rx,tx").stdout.splitlines()[0]
    assert (
        text.startswith(f"{d / 'mulaw.wav'}: rx, 8000 Hz, 22.00 s; 3 utterances")
        and "; file: mu-law, 8000 Hz, 2 channels" in text
    )


def _bad_files(d: Path):
    (d / "text.wav").write_text("not audio\n")
    with wave.open(str(d / "stereo.wav"), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(RATE), w.writeframes(b"\0" * 400)
    with wave.open(str(d / "rate.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(4000), w.writeframes(b"\0" * 400)
    with wave.open(str(d / "empty.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE), w.writeframes(b"")
    (d / "adpcm.wav").write_bytes(riff(2, 1, 8000, 4, b"\0" * 400))
    (d / "head.wav").write_bytes(b"RIFF\x04\0\0\0WAVE")
    (d / "nofmt.wav").write_bytes(b"RIFF\x10\0\0\0WAVEdata\x04\0\0\0\0\0\0\0")
    (d / "dir.wav").mkdir(exist_ok=True)


@pytest.mark.parametrize(
    "args, names",
    [
        (["missing.wav"], "missing.wav"),
        (["text.wav"], "text.wav"),
        (["stereo.wav"], "--channels rx,tx"),
        (["rate.wav"], "rate.wav: 4000 Hz"),
        (["empty.wav"], "empty.wav"),
        (["adpcm.wav"], "adpcm.wav: WAV format tag 2"),
        (["head.wav"], "head.wav"),
        (["nofmt.wav"], "nofmt.wav"),
        (["dir.wav"], "dir.wav"),
        (["{rx}", "--tx", "stereo.wav"], "stereo.wav: 2 channels"),
        (["{rx}", "--tx", "missing.wav"], "missing.wav"),
        (["{tx}", "--channel", "tx", "--tx", "{tx}"], "--tx"),
        (["{rx}", "--block-ms", "nan"], "--block-ms"),
        (["stereo.wav", "--channels", "rx,rx"], "--channels"),
        (["stereo.wav", "--channels", "rx"], "stereo.wav has 2"),
        (["stereo.wav", "--channels", "rx,agent"], "--channels"),
        (["stereo.wav", "--channels", "tx,-"], "no rx channel"),
        (["stereo.wav", "--channels", "rx,tx", "--tx", "{tx}"], "already holds"),
    ],
)
def test_bad_input_is_one_line_exit_2(call, args, names):
    rx, tx, _, d = call
    _bad_files(d)
    args = [a.format(rx=rx, tx=tx) if "{" in a else (str(d / a) if a.endswith(".wav") else a) for a in args]
    proc = analyze(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.count("\n") == 1 and names in proc.stderr
    assert "Traceback" not in proc.stderr


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tag=st.sampled_from([1, 3, 6, 7, 2, 0xFFFE, 0]),
    channels=st.integers(0, 10),
    rate=st.sampled_from([0, 1, 4000, 8000, 11025, 44100, 384000, 400000, 2**32 - 1]),
    bits=st.integers(0, 70),
    payload=st.binary(max_size=64),
    cut=st.integers(0, 120),
)
@example(
    tag=3, channels=1, rate=8000, bits=32, payload=struct.pack("<4f", float("nan"), float("inf"), -1e30, 0.5), cut=120
)
def test_any_wav_header_reads_or_fails_cleanly(tmp_path, tag, channels, rate, bits, payload, cut):
    """Whatever a header says (and wherever the file is cut), read_recording returns int16
    samples at a supported rate or raises one InputError naming the file."""
    data = riff(1, 1, 8000, 16, payload)
    data = (
        data[:20]
        + struct.pack("<HHIIHH", tag, channels, rate, 0, (channels * ((bits + 7) // 8)) & 0xFFFF, bits)
        + data[36:]
    )
    path = tmp_path / "x.wav"
    path.write_bytes(data[: len(data) - cut] if cut < len(data) else data[:12])
    try:
        rec = read_recording(path)
    except InputError as exc:
        assert "x.wav" in str(exc) and "\n" not in str(exc)
    else:
        assert rec.samples.dtype == np.int16 and rec.rate_hz in (8000, 16000, 32000, 48000) and len(rec.samples)
