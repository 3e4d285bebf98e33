"""The frame-labelled corpus of `tools/bench`, built at run time (no audio is committed).

Every track is 16 kHz int16 mono, built from a clean speech track whose frames are labelled
before anything else is done to it:

  speech sources   human-long   long Asterisk prompts back to back from t = 0 (no lead-in)
                   human-short  short Asterisk prompts joined with 0.2-3 s gaps
                   en-us, en-us-fast, cmn, cmn-fast
                                espeak-ng paragraphs (175 and 280 words/min) joined with
                                0.2-3 s gaps, from t = 0
  level            the clean track's P.56-style active level (firmware levels)
  noise            white, pink, babble (6 other talkers, dry), moh (Asterisk music on hold),
                   office (HVAC, keyboard, two distant talkers, now and then a phone);
                   SNR = speech active level - noise RMS level
  band             wide (16 kHz as built) or tel: 300-3400 Hz band-pass, 8 kHz, G.711
                   mu-law encode/decode, back to 16 kHz
  echo (calls)     the agent's tx copied into rx at a coupling (dB) and a delay (ms)
  crowd (beside)   a crowd in a room around the caller (`crowd`): twelve talkers, each
                   through its own room; not one of NOISES, so the corpus figures are
                   comparable from run to run. `crowd_grid` is its own small corpus.
  other talkers    a holdout (`voices_grid`): the corpus's conditions with speech by six
  (beside)         talkers the thresholds were never tuned on (OTHER_VOICES; `tools/dev
                   bench-setup` installs them), short prompts joined with 0.2-3 s gaps

Frame labelling rule (30 ms frames of the *clean* wideband track at its final level): a
frame is speech when its level is within 25 dB of the track's active speech level; pauses
of at most 300 ms (the analyser's default hangover) between speech frames are bridged, so
the truth is utterances as a smoothed detector should report them. An utterance is a run
of speech frames after bridging.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import soxr

from firmware.analysis.levels import active_level_dbfs, frame_power, power_to_dbfs
from firmware.sim import speech as sp
from firmware.sim.g711 import mulaw_decode, mulaw_encode
from firmware.sim.wav import read_wav

RATE_HZ = 16000
FRAME_MS = 30
FRAME_LEN = RATE_HZ * FRAME_MS // 1000
LABEL_BELOW_ACTIVE_DB = 25.0
LABEL_BRIDGE_MS = 300
MOH_DIR = Path("/usr/share/asterisk/moh")

SOURCES = ("human-long", "human-short", "en-us", "en-us-fast", "cmn", "cmn-fast")
NOISES = ("white", "pink", "babble", "moh", "office")
SNRS_DB = (20.0, 10.0, 5.0, 0.0)
CROWD_SNRS_DB = (5.0, 0.0)
LEVELS_DBFS = (-12.0, -20.0, -35.0, -50.0)
BANDS = ("wide", "tel")
COUPLINGS_DB = (-6.0, -12.0, -18.0, -25.0)
DELAYS_MS = (0, 40, 200)

# Long prompts by one talker (none is used for babble), for speech with few gaps.
LONG_PROMPTS = ("demo-instruct", "demo-congrats", "priv-callee-options", "conf-adminmenu-18",
                "conf-adminmenu-162", "conf-usermenu-162", "vm-opts-full", "demo-nogo",
                "confbridge-mute-extended", "conf-adminmenu-menu8")
ESPEAK_VOICES = {"en-us": ("en-us", 175), "en-us-fast": ("en-us", 280),
                 "cmn": ("cmn", 175), "cmn-fast": ("cmn", 280)}
# The holdout's talkers: name -> directory under SOUNDS_DIR (tools/dev BENCH_APT_PACKAGES).
# Asterisk's core sounds in Canadian French (June), Italian (Carlo, a man) and Russian, 16-bit
# WAV; and three Debian prompt sets recorded elsewhere: Colombian Spanish and French (Armelle
# Desjardins), both GSM 06.10 (decoded by sox), and Italian (Marco Menardi, Paola Dal Zot), WAV.
SOUNDS_DIR = Path("/usr/share/asterisk/sounds")
OTHER_VOICES = {"fr-June": "fr_CA_f_June", "it-Carlo": "it_IT_m_Carlo", "ru-IvrvoiceRU": "ru_RU_f_IvrvoiceRU",
                "es-CO": "es", "fr-Armelle": "fr", "it-Menardi": "it_IT_f_Menardi"}
# Files that hold no speech and are long enough to be taken (in each of Asterisk's core-sounds
# voices): tt-monkeys is 16 s of monkeys screeching (labelled by level alone, it would be "speech").
NOT_SPEECH = ("tt-monkeys",)
# The crowd's other voices (espeak-ng voice, words/min), besides six Asterisk prompts.
CROWD_VOICES = (("en-us", 175), ("en-us+m3", 160), ("en-us+f2", 170), ("en-gb", 175), ("cmn", 175), ("cmn", 140))
EN_TEXT = (
    "Thank you for calling customer service, my name is Alex, how can I help you today? "
    "I can see your account here, and the last payment arrived on the third of this month.",
    "Let me check that for you. The delivery was scheduled for Tuesday morning, but the driver "
    "could not reach the address, so it went back to the depot near the station.",
    "Please hold the line for a moment while I transfer you to the billing department. "
    "If the line drops, we will call you back on the number ending in four five six.",
    "Your new contract starts next week. You keep the same number, the same tariff and the "
    "same data allowance, and the first bill will show both months together.",
    "I understand that this is frustrating. I have opened a ticket for the engineer, who will "
    "call you within two working days to arrange a visit at a time that suits you.",
)
CMN_TEXT = (
    "您好，欢迎致电客户服务中心，我是客服小王，请问有什么可以帮您？我这边已经看到您的账户信息了。",
    "请您稍等，我帮您查询一下。您的包裹原定星期二上午送达，但是快递员联系不上您，所以退回了网点。",
    "我现在帮您转接到账单部门，请不要挂机。如果电话中断了，我们会按照您尾号四五六的号码给您回电。",
    "您的新合同下个星期开始生效，号码、资费和流量都保持不变，第一张账单会把两个月的费用合并显示。",
    "非常理解您的心情，我已经为您提交了维修工单，工程师会在两个工作日内联系您，和您约定上门时间。",
)


@dataclasses.dataclass
class Track:
    """One labelled track. `pcm` int16 at RATE_HZ; `truth` one bool per 30 ms frame."""
    name: str
    source: str
    noise: str | None        # None = clean
    snr_db: float | None
    level_dbfs: float | None  # None for noise alone
    band: str
    pcm: np.ndarray
    truth: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE_HZ


# ---- labels -----------------------------------------------------------------------------------
def label_frames(clean: np.ndarray, level_dbfs: float) -> np.ndarray:
    """The frame labelling rule of the module docstring."""
    n = len(clean) // FRAME_LEN
    level = power_to_dbfs(frame_power(clean[: n * FRAME_LEN].reshape(n, FRAME_LEN)))
    active = level > level_dbfs - LABEL_BELOW_ACTIVE_DB
    return bridge(active, LABEL_BRIDGE_MS // FRAME_MS)


def bridge(active: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill runs of False of length <= max_gap between two True frames."""
    out = active.copy()
    idx = np.flatnonzero(active)
    if len(idx) > 1:
        gaps = np.diff(idx)
        for a, g in zip(idx[:-1][(gaps > 1) & (gaps <= max_gap + 1)], gaps[(gaps > 1) & (gaps <= max_gap + 1)]):
            out[a:a + g] = True
    return out


def segments_to_frames(segments, n_frames: int) -> np.ndarray:
    """The frames (FRAME_MS each) that [(start_s, end_s, ...)] segments cover, as labels."""
    frame_s = FRAME_MS / 1000
    out = np.zeros(n_frames, dtype=bool)
    for start, end, *_ in segments:
        out[round(start / frame_s):round(end / frame_s)] = True
    return out


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[(first, past_last)] of the runs of True."""
    f = np.concatenate(([False], np.asarray(flags, dtype=bool), [False]))
    d = np.flatnonzero(np.diff(f.astype(np.int8)))
    return list(zip(d[0::2].tolist(), d[1::2].tolist()))


# ---- speech sources ------------------------------------------------------------------------
def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


@functools.cache
def espeak(text: str, voice: str, wpm: int) -> np.ndarray:
    """espeak-ng speech at RATE_HZ (float64, int16 units, read-only)."""
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", text],
                         capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    x = soxr.resample(x, rate, RATE_HZ, quality="HQ")
    x.setflags(write=False)
    return x


def other_voices_available() -> bool:
    """The holdout's prompt sets are installed, and sox, which decodes the GSM-coded ones."""
    return shutil.which("sox") is not None and all((SOUNDS_DIR / d).is_dir() for d in OTHER_VOICES.values())


def _read_gsm(path: Path) -> tuple[int, np.ndarray]:
    """A raw GSM 06.10 prompt (8 kHz) decoded by sox: (rate, int16 samples)."""
    raw = subprocess.run(["sox", "-t", "gsm", str(path), "-t", "raw", "-e", "signed-integer", "-b", "16",
                          "-L", "-"], capture_output=True, check=True).stdout
    return 8000, np.frombuffer(raw, dtype="<i2")


@functools.cache
def _voice_prompts(voice: str) -> tuple[np.ndarray, ...]:
    """The voice's prompts of at least 0.8 s (the longer half: words alone are mostly digits),
    but NOT_SPEECH, at RATE_HZ without their lead-in and tail (read-only)."""
    out = []
    folder = SOUNDS_DIR / OTHER_VOICES[voice]
    for path in sorted([*folder.glob("*.wav"), *folder.glob("*.gsm")]):
        if path.stem in NOT_SPEECH:
            continue
        rate, pcm = read_wav(path) if path.suffix == ".wav" else _read_gsm(path)
        if len(pcm) >= 0.8 * rate:
            x = trim(sp.resample(pcm, rate, RATE_HZ))
            x.setflags(write=False)
            out.append(x)
    return tuple(out)


def _chain(parts, gaps_s, seconds: float, lead_s: float = 0.0) -> np.ndarray:
    """Parts one after another with the given gaps, cut or zero-padded to `seconds`."""
    n = int(seconds * RATE_HZ)
    out = np.zeros(n)
    pos = int(lead_s * RATE_HZ)
    for p, g in zip(parts, gaps_s):
        if pos >= n:
            break
        k = min(len(p), n - pos)
        out[pos:pos + k] = p[:k]
        pos += len(p) + int(g * RATE_HZ)
    return out


def speech(source: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A clean speech track of `seconds` (unscaled)."""
    gaps = rng.uniform(0.2, 3.0, size=64)
    if source == "human-long":
        names = [LONG_PROMPTS[i] for i in rng.permutation(len(LONG_PROMPTS))]
        return _chain([sp.load_prompt(nm, RATE_HZ) for nm in names], rng.uniform(0.3, 1.0, 64), seconds)
    if source == "human-short":
        names = [str(s) for s in rng.choice(sp.SPEECH_PROMPTS, size=24)]
        return _chain([sp.load_prompt(nm, RATE_HZ) for nm in names], gaps, seconds, lead_s=float(gaps[-1]))
    if source in OTHER_VOICES:
        prompts = _voice_prompts(source)
        parts = [prompts[i] for i in rng.choice(len(prompts), size=40, replace=False)]
        return _chain(parts, gaps, seconds, lead_s=float(gaps[-1]))
    voice, wpm = ESPEAK_VOICES[source]
    texts = CMN_TEXT if voice == "cmn" else EN_TEXT
    order = [texts[i % len(texts)] for i in rng.permutation(3 * len(texts))]
    return _chain([espeak(t, voice, wpm) for t in order], gaps, seconds)


# ---- noise -----------------------------------------------------------------------------------
@functools.cache
def _moh(name: str) -> np.ndarray:
    rate, pcm = read_wav(MOH_DIR / name)
    x = soxr.resample(pcm.astype(np.float64), rate, RATE_HZ, quality="HQ")
    x.setflags(write=False)
    return x


def moh_files() -> list[str]:
    return sorted(p.name for p in MOH_DIR.glob("*.wav")) if MOH_DIR.is_dir() else []


def _office(n: int, rng: np.random.Generator) -> np.ndarray:
    """HVAC (pink, low-passed), keyboard clicks in typing bursts, two distant talkers, and
    (half the time) a phone ringing across the room; unscaled."""
    hvac = sp.noise("pink", n, RATE_HZ, seed=int(rng.integers(1 << 30)), level_dbfs=-30.0)
    spec = np.fft.rfft(hvac)
    f = np.fft.rfftfreq(n, 1.0 / RATE_HZ)
    hvac = np.fft.irfft(spec / np.sqrt(1.0 + (f / 800.0) ** 4), n)
    keys = np.zeros(n)
    click = rng.standard_normal(int(0.012 * RATE_HZ)) * np.exp(-np.arange(int(0.012 * RATE_HZ)) / (0.002 * RATE_HZ))
    t = 0
    while t < n:
        burst_end = t + int(rng.uniform(1.0, 4.0) * RATE_HZ)
        while t < min(burst_end, n - len(click)):
            keys[t:t + len(click)] += click * rng.uniform(0.5, 1.5)
            t += int(rng.uniform(0.08, 0.25) * RATE_HZ)
        t += int(rng.uniform(1.0, 5.0) * RATE_HZ)
    keys = sp.scale_to(keys, -38.0, RATE_HZ, active=False) if keys.any() else keys
    talkers = np.zeros(n)
    for name in rng.choice(sp.BABBLE_PROMPTS, size=2, replace=False):
        p = sp.load_prompt(str(name), RATE_HZ)
        reps = np.tile(p, n // len(p) + 2)
        s = int(rng.integers(0, len(p)))
        talkers += reps[s:s + n]
    spec = np.fft.rfft(talkers)   # distant: the room takes the highs
    talkers = sp.scale_to(np.fft.irfft(spec / np.sqrt(1.0 + (f / 1500.0) ** 2), n), -36.0, RATE_HZ, active=False)
    x = hvac + keys + talkers
    if rng.random() < 0.5:
        ring = sp.tone((440.0, 480.0), (2.0, 4.0), 6.0, RATE_HZ, level_dbfs=-40.0)
        s = int(rng.integers(0, max(1, n - len(ring))))
        x[s:s + len(ring)] += ring[: n - s]
    return x


def room(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`x` as a handset hears a talker elsewhere in the room: the direct sound plus a late
    reverberation (Gaussian noise decaying to -60 dB in an RT60 of 0.3-0.8 s, from 4 ms on)
    whose energy is 6 dB under to 8 dB over the direct sound's, and the highs that distance
    takes (a first-order low-pass at 2-8 kHz)."""
    n = len(x)
    rt60_s, reverb_db, lowpass_hz = rng.uniform(0.3, 0.8), rng.uniform(-6.0, 8.0), rng.uniform(2000.0, 8000.0)
    t = np.arange(RATE_HZ) / RATE_HZ
    h = rng.standard_normal(RATE_HZ) * np.exp(-6.908 * t / rt60_s)
    h[: int(0.004 * RATE_HZ)] = 0.0
    h *= np.sqrt(10.0 ** (reverb_db / 10.0) / float(h @ h))
    h[0] = 1.0
    m = n + len(h)
    f = np.fft.rfftfreq(m, 1.0 / RATE_HZ)
    y = np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(h, m) / np.sqrt(1.0 + (f / lowpass_hz) ** 2), m)
    return y[:n]


def _crowd(n: int, rng: np.random.Generator) -> np.ndarray:
    """Twelve talkers around the caller, unscaled: six Asterisk prompts and the six espeak-ng
    voices of CROWD_VOICES, each looped from a random place, at its own level (+-3.5 dB)
    and through its own room (`room`). Unlike `babble` (six dry talkers summed, as if each
    spoke into the handset in an anechoic room), this is what a phone in a crowd hears."""
    x = np.zeros(n)
    parts = [sp.load_prompt(str(nm), RATE_HZ) for nm in rng.choice(sp.BABBLE_PROMPTS, size=6, replace=False)]
    parts += [espeak(" ".join(CMN_TEXT if v == "cmn" else EN_TEXT), v, wpm) for v, wpm in CROWD_VOICES]
    for p in parts:
        p = p / np.sqrt(np.mean(p * p)) * 10.0 ** (rng.uniform(-3.5, 3.5) / 20.0)
        reps = np.tile(p, n // len(p) + 2)
        s = int(rng.integers(0, len(p)))
        x += room(reps[s:s + n], rng)
    return x


def noise(kind: str, n: int, level_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of a noise kind (NOISES, or "crowd") at an RMS level of `level_dbfs`."""
    seed = int(rng.integers(1 << 30))
    if kind in ("white", "pink", "babble"):
        return sp.noise(kind, n, RATE_HZ, seed=seed, level_dbfs=level_dbfs)
    if kind == "moh":
        files = moh_files()
        x = _moh(files[seed % len(files)])
        s = int(rng.integers(0, max(1, len(x) - n)))
        x = np.resize(x[s:], n)
    elif kind == "office":
        x = _office(n, rng)
    elif kind == "crowd":
        x = _crowd(n, rng)
    else:
        raise ValueError(f"unknown noise {kind!r}")
    return sp.scale_to(x, level_dbfs, RATE_HZ, active=False)


# ---- telephone band ---------------------------------------------------------------------------
def telephone_band(x: np.ndarray) -> np.ndarray:
    """300-3400 Hz band-pass (raised-cosine edges 250-350 and 3300-3500 Hz), 8 kHz, mu-law
    round trip, back to RATE_HZ. Float in (int16 units), float out."""
    n = len(x)
    f = np.fft.rfftfreq(n, 1.0 / RATE_HZ)
    h = np.clip((f - 250.0) / 100.0, 0.0, 1.0) * np.clip((3500.0 - f) / 200.0, 0.0, 1.0)
    h = 0.5 - 0.5 * np.cos(np.pi * h)
    y = np.fft.irfft(np.fft.rfft(x) * h, n)
    y8 = soxr.resample(y, RATE_HZ, 8000, quality="HQ")
    y8 = mulaw_decode(mulaw_encode(sp.to_int16(y8))).astype(np.float64)
    out = soxr.resample(y8, 8000, RATE_HZ, quality="HQ")
    return np.resize(out, n) if len(out) != n else out


# ---- tracks ----------------------------------------------------------------------------------
def speech_track(source: str, level_dbfs: float, noise_kind: str | None, snr_db: float | None,
                 band: str, seconds: float, seed: int) -> Track:
    rng = np.random.default_rng(seed)
    clean = speech(source, seconds, rng)
    clean = clean * 10.0 ** ((level_dbfs - active_level_dbfs(clean, RATE_HZ)) / 20.0)
    truth = label_frames(clean, level_dbfs)
    x = clean
    if noise_kind is not None:
        x = clean + noise(noise_kind, len(clean), level_dbfs - snr_db, rng)
    if band == "tel":
        x = telephone_band(x)
    snr = "clean" if noise_kind is None else f"{noise_kind}@{snr_db:g}dB"
    name = f"{source}/{level_dbfs:g}dBFS/{snr}/{band}"
    return Track(name, source, noise_kind, snr_db, level_dbfs, band, sp.to_int16(x), truth)


def noise_track(kind: str, level_dbfs: float, band: str, seconds: float, seed: int) -> Track:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE_HZ)
    x = noise(kind, n, level_dbfs, rng)
    if band == "tel":
        x = telephone_band(x)
    return Track(f"noise/{kind}/{level_dbfs:g}dBFS/{band}", "none", kind, None, None, band,
                 sp.to_int16(x), np.zeros(n // FRAME_LEN, dtype=bool))


def speech_grid(quick: bool):
    """(source, level, noise, snr, band) of every speech track.

    Clean speech: every source at every level in both bands. Noisy speech: every source,
    noise kind, SNR and band, the level rotating over LEVELS_DBFS (so each level meets every
    noise kind and SNR across the sources)."""
    sources = SOURCES if not quick else ("human-long", "human-short", "en-us", "cmn-fast")
    out = []
    for si, src in enumerate(sources):
        for level in (LEVELS_DBFS if not quick else (-12.0, -50.0)):
            for band in BANDS:
                out.append((src, level, None, None, band))
        for ni, kind in enumerate(NOISES):
            for ki, snr in enumerate(SNRS_DB if not quick else (10.0, 0.0)):
                for bi, band in enumerate(BANDS if not quick else ("wide",)):
                    level = LEVELS_DBFS[(si + ni + ki + bi) % len(LEVELS_DBFS)]
                    out.append((src, level, kind, snr, band))
    return out


def noise_grid(quick: bool):
    levels = (-20.0, -35.0, -50.0) if not quick else (-20.0,)
    return [(kind, level, band) for kind in NOISES for level in levels
            for band in (BANDS if not quick else ("wide",))]


def crowd_grid(quick: bool):
    """The crowd's own corpus: ((source, level, "crowd", snr, band) speech tracks, ("crowd",
    level, band) noise-alone tracks). Every source at CROWD_SNRS_DB in both bands, the level
    rotating over LEVELS_DBFS; the crowd alone at -20, -35 and -50 dBFS in both bands."""
    sources = SOURCES if not quick else ("human-long", "en-us")
    speech_ = [(src, LEVELS_DBFS[(si + ki + bi) % len(LEVELS_DBFS)], "crowd", snr, band)
               for si, src in enumerate(sources) for ki, snr in enumerate(CROWD_SNRS_DB)
               for bi, band in enumerate(BANDS if not quick else ("wide",))]
    alone = [("crowd", level, band) for level in ((-20.0, -35.0, -50.0) if not quick else (-20.0,))
             for band in (BANDS if not quick else ("wide",))]
    return speech_, alone


def voices_grid(quick: bool):
    """The holdout's speech tracks (source, level, noise, snr, band): each of OTHER_VOICES
    clean at every level in both bands, and in every noise at every SNR in both bands, the
    level rotating over LEVELS_DBFS (as speech_grid does for the corpus's sources)."""
    voices = tuple(OTHER_VOICES) if not quick else ("it-Carlo",)
    out = []
    for vi, v in enumerate(voices):
        out += [(v, level, None, None, band) for level in LEVELS_DBFS for band in BANDS]
        out += [(v, LEVELS_DBFS[(vi + ni + ki + bi) % len(LEVELS_DBFS)], kind, snr, band)
                for ni, kind in enumerate(NOISES if not quick else ("babble",))
                for ki, snr in enumerate(SNRS_DB if not quick else (0.0,))
                for bi, band in enumerate(BANDS)]
    return out


# ---- two-channel calls with tx -> rx coupling ----------------------------------------------
@dataclasses.dataclass
class Call:
    name: str
    coupling_db: float | None   # None = no coupling
    delay_ms: int
    customer: bool              # the customer talks (else: a silent call)
    tx: np.ndarray
    rx: np.ndarray
    rx_truth: np.ndarray        # customer speech frames (labels of the clean customer track)
    hook_off_t: float


def trim(x: np.ndarray, below_db: float = 40.0) -> np.ndarray:
    """`x` without its leading and trailing samples more than `below_db` under its peak (the
    prompts' own lead-in and tail), so the gaps placed between turns are the real gaps."""
    loud = np.flatnonzero(np.abs(x) > np.abs(x).max() * 10.0 ** (-below_db / 20.0))
    return x[loud[0]:loud[-1] + 1] if len(loud) else x


def call(coupling_db: float | None, delay_ms: int, customer: bool, seconds: float, seed: int) -> Call:
    """Agent and customer taking turns (never together), each turn one to three prompts with
    0.35-0.9 s pauses between them, the agent answering within 0.1-0.6 s; rx also carries a pink line noise at -60 dBFS and, with
    coupling, the agent's tx delayed by `delay_ms` at `coupling_db`. A silent customer: the
    agent greets, then asks again after 6-7 s pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE_HZ)
    tx, rx_clean = np.zeros(n), np.zeros(n)
    t = 0.5
    turn = 0
    while True:
        names = [str(s) for s in rng.choice(sp.SPEECH_PROMPTS, size=int(rng.integers(1, 4)), replace=False)]
        agent = turn % 2 == 0 or not customer
        x = trim(sp.speech_track(names, rng.uniform(0.35, 0.9, size=len(names) - 1), RATE_HZ,
                                 -20.0 if agent else -26.0))
        start = int(t * RATE_HZ)
        if start + len(x) > n - int(1.0 * RATE_HZ):
            break
        (tx if agent else rx_clean)[start:start + len(x)] = x
        # the agent answers quickly (0.1-0.6 s, often within the VAD's hangover), the customer
        # after 0.3-1.5 s; to a silent customer the agent speaks again after 6-7 s
        gap_s = rng.uniform(6.0, 7.0) if not customer else rng.uniform(0.3, 1.5) if agent else rng.uniform(0.1, 0.6)
        t += len(x) / RATE_HZ + float(gap_s)
        turn += 1
    rx_truth = label_frames(rx_clean, -26.0) if customer else np.zeros(n // FRAME_LEN, dtype=bool)
    rx = rx_clean + sp.noise("pink", n, RATE_HZ, seed=seed + 7, level_dbfs=-60.0)
    if coupling_db is not None:
        d = int(delay_ms * RATE_HZ / 1000)
        echo = np.concatenate((np.zeros(d), tx[: n - d])) * 10.0 ** (coupling_db / 20.0)
        rx = rx + echo
    tx = tx + sp.noise("white", n, RATE_HZ, seed=seed + 8, level_dbfs=-70.0)
    cname = "none" if coupling_db is None else f"{coupling_db:g}dB/{delay_ms}ms"
    return Call(f"call/{cname}/{'talking' if customer else 'silent'}", coupling_db, delay_ms, customer,
                sp.to_int16(tx), sp.to_int16(rx), rx_truth, 0.05)


def call_grid(quick: bool):
    cond = [(None, 0)] + [(c, d) for c in COUPLINGS_DB for d in DELAYS_MS]
    if quick:
        cond = [(None, 0), (-18.0, 40), (-6.0, 200)]
    return [(c, d, customer) for c, d in cond for customer in (True, False)]
