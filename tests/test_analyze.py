"""`headset-station analyze`: the analyser's decisions for a recording, and its errors."""

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from firmware.sim import speech

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


def test_same_result_in_live_blocks(call):
    rx, _, _, _ = call
    default = json.loads(analyze(rx, "--json").stdout)
    assert json.loads(analyze(rx, "--json", "--block-ms", 30).stdout) == default


def _bad_files(d: Path):
    (d / "text.wav").write_text("not audio\n")
    with wave.open(str(d / "stereo.wav"), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(RATE), w.writeframes(b"\0" * 400)
    with wave.open(str(d / "rate.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(11025), w.writeframes(b"\0" * 400)
    with wave.open(str(d / "empty.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE), w.writeframes(b"")
    with wave.open(str(d / "wide.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(3), w.setframerate(RATE), w.writeframes(b"\0" * 600)
    with wave.open(str(d / "rx8k.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\0" * 4000)
    (d / "dir.wav").mkdir(exist_ok=True)


@pytest.mark.parametrize(
    "args, names",
    [
        (["missing.wav"], "missing.wav"),
        (["text.wav"], "text.wav"),
        (["stereo.wav"], "stereo.wav"),
        (["rate.wav"], "rate.wav"),
        (["empty.wav"], "empty.wav"),
        (["wide.wav"], "wide.wav"),
        (["dir.wav"], "dir.wav"),
        (["rx8k.wav", "--tx", "{tx}"], "tx.wav"),
        (["{rx}", "--tx", "missing.wav"], "missing.wav"),
        (["{tx}", "--channel", "tx", "--tx", "{tx}"], "--tx"),
        (["{rx}", "--block-ms", "nan"], "--block-ms"),
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
