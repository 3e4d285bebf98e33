"""Optional neural second stage of the speech decision: Silero VAD on onnxruntime.

`analysis.second_stage = "silero"` (the `[silero]` extra: onnxruntime, and the `silero-vad`
wheel installed without its torch dependency) makes each `ChannelAnalyzer` run Silero VAD
v5 next to its own evidence and fuse the two with `fuse`. The model is the ONNX file the
`silero-vad` wheel ships as package data (found from the package's location; never
downloaded, and the package itself is never imported: its __init__ imports torch).

Grid. Silero runs in its telephone mode, the wheel's streaming model at 8 kHz, whatever
the capture rate: the customer channel is a telephone line, and on tools/bench's corpus the
8 kHz mode is better than the 16 kHz one on both bands (fused frame F1 0.953 against 0.940,
telephone band 0.939 against 0.914) at half the samples. Input at 16, 32 or 48 kHz is
decimated to 8 kHz first. The model takes 256-sample chunks (32 ms) with the previous 32
samples as context and a recurrent state kept across chunks. Analyser frame g (30 ms) gets
the probability of the last chunk that ended within it, or before it: causal (at most one
chunk, 32 ms, late), and a function of the sample index only, so the probabilities do not
depend on how the audio is cut into blocks (replay and live give the same decisions).

Level. Silero's recall falls on quiet speech (-50 dBFS). Its input is normalised by a gain
computed from the stage's own chunk levels: the recent speech peak (a decaying maximum of
chunk levels) is brought to `TARGET_DBFS`, never more than `MAX_GAIN_DB`, and never so much
that the noise (a slowly rising minimum of chunk levels) goes above `NOISE_CAP_DBFS`. The
gain is updated per chunk from samples already seen, so it too is block-size independent.

Fusion (`fuse`, per frame, before the echo and tone vetoes of the analyser, which still
apply): a high probability is strong evidence (it can start or keep an utterance, e.g.
speech at SNR 0 dB under babble, which the energy path cannot separate); a middle one
keeps an utterance going; a low one vetoes the energy and webrtcvad evidence from starting
one (music on hold, office transients) and from keeping one going. The vetoes are low
(P_VETO_START, P_VETO): the frames of music and office noise that the energy path takes
for speech get probabilities of 0.000-0.005 from Silero, fast or synthetic speech that it
is unsure of 0.01-0.1, and that speech is the analyser's to decide. The thresholds were
chosen on tools/bench's corpus, with one Silero state (see "State drift"), and checked on
a second corpus built the same way with other seeds (other prompts, texts, noise
excerpts): frame F1 0.953 and 0.956, at SNR 0 dB 0.882 and 0.888, false utterances on noise
alone 0.27 and 0.30 per minute.

Late ends. Silero's probability stays over P_KEEP for about 90 ms after the voice stops (its
recurrent state, and up to one 32 ms chunk of grid): on tools/bench's clean speech the
median probability 0, 1, 2 and 3 frames after the labelled end of an utterance is 0.97,
0.96, 0.84 and 0.57, and 0.99, 0.94, 0.82 and 0.46 with its other talkers (Asterisk's
French, Italian and Russian voices). A frame that only Silero calls speech therefore vouches for
speech only up to LATE_S before it (`vad.Smoother.step`'s `late_frames`): it keeps an
utterance going, but does not push its reported end later (the pause rules count from
it). On tools/bench's corpus that took frame F1 on clean speech from 0.986 to 0.990
(overall 0.953 to 0.954) and the worst customer talk-time error with coupling from 4% to
2%; on a first selection of its other talkers' prompts, precision on clean speech from
0.978 to 0.987 with recall unchanged.

Early starts. Out of a pause, Silero's probability can stay near 0 for the first 100-300
ms of a voice the analyser's own evidence already calls speech (a soft onset, the first
syllable of a GSM-coded talker), and the veto holds the utterance back until Silero agrees.
When it does, the utterance is dated from where the analyser's own unbroken evidence began,
at most EARLY_S earlier (the speech Silero confirms is the speech the analyser heard
starting). Only the start moves; it never reaches into the previous utterance, and
evidence that Silero never confirms still starts nothing. On tools/bench: frame F1 0.962 ->
0.963, at SNR 0 dB 0.911 -> 0.913; its six other talkers 0.916 -> 0.923, at 0 dB 0.842 ->
0.847, clean speech 0.971 -> 0.982 (the GSM-coded Colombian Spanish and French talkers,
which this was found on, 0.893 -> 0.905 and 0.877 -> 0.895; every talker gained); false
utterances on noise alone unchanged (0.40 a minute); the worst customer talk-time error
with coupling 2% -> 3%. From cached probabilities, 0.15 s back gained less (0.909 against
0.913 on the three talkers of Debian's prompt sets) and 0.6 s no more.

Tails. Inside an utterance the analyser's weak evidence (a frame near the floor: webrtcvad
over office noise, a burst of music or babble) kept it going for up to MAX_WEAK_S after the
talker stopped, and across the pauses between their sentences, while Silero called those
frames not speech. A frame with only weak evidence of the analyser's own now keeps an
utterance only while Silero's probability is at least P_TAIL (strong evidence still keeps
it down to P_VETO). On tools/bench: frame F1 0.963 -> 0.966, at SNR 0 dB 0.913 (unchanged),
precision at 10 dB 0.96 -> 0.97; its six other talkers 0.923 -> 0.928, at 0 dB 0.847 ->
0.848 (five talkers gained 0.003-0.011, the French of Armelle Desjardins, whose recall is the
lowest, lost 0.005); utterances missed 1.2% -> 1.4% (at 0 dB 5.3% -> 5.9%); the crowd in a
room at 0 dB 0.748 -> 0.734; dry babble alone called speech 73% -> 69% of the time; noise
alone, the agent's echo and talk time unchanged. From cached probabilities P_TAIL 0.15-0.3
give the same within 0.001 (corpus) and 0.001 (other talkers); the tails were found on the
other talkers, so for this change they are not untouched, but the corpus gains as well.

State drift. Silero's recurrent state can drift, on a long noisy stream, into one that no
longer hears speech, and stay there (silero-vad issue #725 reports it on live streams). On
tools/bench's telephone-band tracks at SNR 0-5 dB, a talker Silero found in 78-87% of the
first 20 s was found in 5-9% of the last 20 s, and fast synthetic Mandarin in none of it
from the start of the track. So the stage runs two states side by side, as one batch of
the model (one batch of two costs about 1.3 times one state's run):
- the first state, kept for the whole stream: drifted, it is the surer that music or office
  noise is not speech;
- a renewed one: once its probability has stayed under P_RENEW for RENEW_QUIET_S (a pause),
  at most every RENEW_EVERY_S, a new state starts from zero and warms up on RENEW_WARM_S of
  audio beside it (a cold state calls noise speech for a few chunks), then takes its place.
The frame's probability is the renewed state's when that is at least P_WEAK (speech heard),
else the smaller of the two (the surer "not speech" vetoes). A renewed state alone lets the
veto go: its probability on music on hold is 0.02-0.5 where the kept state's is about 0.000,
and music alone got a second of talk a minute. Renewal depends on the chunks alone, so
replay and live still agree. On tools/bench, against one state: frame F1 0.954 -> 0.962,
at SNR 0 dB 0.881 -> 0.911; its first three other talkers 0.916 -> 0.921, at 0 dB 0.816 ->
0.843; the crowd in a room at 0 dB 0.712 -> 0.746; utterances missed at SNR 0 dB 10.7% ->
5.3%; false utterances on noise alone 0.27 -> 0.40 a minute (the office noise's two distant
talkers are heard more: 0.17 -> 0.83). With the renewed state alone, renewing at most every
5 s instead of 10 s gained no F1 and heard more of them; every 20 s kept less of the gain.

The agent's echo. The analyser's echo veto (firmware.analysis.echo) removes rx frames that
the agent's echo explains by level; an echo under the line's noise does not explain the
frame's level, but Silero still hears the voice in it (a -25 dB echo 7 dB under the noise:
p 0.99). So on rx frames where the predicted echo is within ECHO_AUDIBLE_DB under the noise
floor, or above it, the second stage can only take evidence away, never add it: there the
analyser's own evidence decides (tools/bench: the silent-call script fired in 35 of 36
silent calls with coupling before this rule, 36 after).

Known limit: Silero hears the voices of dry babble as speech, and the fused decision
follows it. tools/bench's babble is six talkers' recordings summed as they are, as if each
spoke into the handset in an anechoic room: about 70% of the time of that babble alone is
called speech (one utterance a minute that never ends), against 0.6% for the analyser
alone; six different synthetic voices summed the same way are called speech as well. A
silent customer among such talkers therefore reads as talking. Talkers heard through a room
are another matter, and reverberation is the cue: tools/bench's crowd in a room (twelve
voices, each with its own reverberation and distance) alone is called speech 3.5% of the
time (0.17 false utterances a minute, the analyser alone 0.50), and speech in it at SNR
5 dB is found better than without the extra (frame F1 0.948 against 0.884; at 0 dB 0.734
against 0.310). The same twelve voices summed dry, or only low-passed, are 34-37% speech.
So a crowd around a caller on the street or in a cafe is not taken for a talker; voices
close to the handset and unreverberated are. The lift of quiet noise by the gain makes
that worse, hence the low `NOISE_CAP_DBFS`. Nothing either stage measures tells that babble
from speech in it at SNR 0 dB: of tools/bench's 90 utterances there, 4-16 ever rise above
the highest level the babble alone reaches over its floor (one frame or the mean of 0.5 s,
in dB or in units of the floor's spread), and Silero's probability separates no better (6%
of their frames above its 99th percentile on the babble alone). A decision that never
starts on the babble alone finds at most those utterances, which, even with exact ends,
caps frame F1 at SNR 0 dB near 0.84 (the target is 0.85). Silero's 16 kHz mode, with the
same gain and states, calls the wideband babble speech as well (a second model confirming
starts: babble alone unchanged, frame F1 0.966 -> 0.964).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from firmware.analysis.vad import Decimator
from firmware.config.extras import SILERO_STREAMING, silero_model

P_START = 0.8  # Silero probability at or above which a frame can start an utterance,
P_KEEP = 0.5  # and at or above which it keeps a running one going (strong evidence)
P_WEAK = 0.5  # at or above, below P_START: weak evidence (keeps an utterance going for a while)
P_VETO = 0.02  # below: no speech evidence at all, whatever the energy/webrtcvad path says,
P_VETO_START = 0.05  # and below this none that could start an utterance
P_TAIL = 0.2  # below: the analyser's weak evidence alone (near the floor) no longer keeps an utterance ("Tails")
START_SNR_DB = 0.0  # and only on a frame this far above the noise floor
TARGET_DBFS = -22.0  # the recent speech peak is brought to this level
MAX_GAIN_DB = 24.0
NOISE_CAP_DBFS = -50.0  # the gain never lifts the noise above this (a lifted babble is more "speech")
PEAK_DECAY_DB_PER_S = 1.0
NOISE_RISE_DB_PER_S = 0.5
MIN_CHUNK_DBFS = -90.0
LATE_S = 0.09  # Silero's evidence is this late at the end of speech (see "Late ends" above)
EARLY_S = 0.3  # a start Silero held back moves to the analyser's own, at most this much earlier ("Early starts")
P_RENEW = 0.1  # the renewed state's probability under this for RENEW_QUIET_S is a pause: it is renewed there,
RENEW_QUIET_S = 1.0
RENEW_EVERY_S = 10.0  # at most this often,
RENEW_WARM_S = 0.5  # by a new state warmed up on this much audio beside it first
ECHO_AUDIBLE_DB = 12.0  # the agent's echo this far under the line's noise floor, or less, is a voice Silero hears
MODEL_RATE_HZ = 8000  # Silero's telephone mode, whatever the capture rate (see the module docstring)
DECIMATOR_TAPS_PER_PHASE = 8


@functools.cache
def _session(name: str):
    """The onnxruntime session of model `name`, one per process: it holds no per-stream state
    (each stage passes its own recurrent state), so the two channels' stages share it, which
    saves the model's ~10 MB a second time."""
    import onnxruntime as ort  # optional heavy dependency, loaded only when the stage is on

    opts = ort.SessionOptions()
    opts.inter_op_num_threads = opts.intra_op_num_threads = 1
    opts.log_severity_level = 3  # (onnxruntime warns of unused initialisers on some of the wheel's models)
    model = silero_model(name)
    if model is None:
        raise RuntimeError(f"the silero_vad package's {name} is not installed")
    return ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])


class SileroStage:
    """Silero VAD (its 8 kHz streaming model, one chunk per call) run chunk by chunk on one
    channel; `frame_probs` gives one probability per analyser frame (see the module docstring
    for the grid and the gain)."""

    def __init__(self, rate_hz: int, frame_len: int):
        self.model_rate_hz = MODEL_RATE_HZ
        factor = rate_hz // MODEL_RATE_HZ
        self._decimator = Decimator(factor, DECIMATOR_TAPS_PER_PHASE) if factor > 1 else None
        self._session = _session(SILERO_STREAMING)
        self._chunk = 256
        self._context_len = 32
        self._frame_len = frame_len // factor  # analyser frame in model-rate samples
        self._sr = np.array(MODEL_RATE_HZ, dtype=np.int64)
        # the model's recurrent (h, c) of its two states ("State drift" in the module docstring),
        # run as one batch: [:, 0] the first state, kept; [:, 1] the renewed one; [:, 2] while
        # a new one warms up
        self._states = np.zeros((2, 2, 128), dtype=np.float32)
        self._context = np.zeros(self._context_len, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)  # model-rate samples not yet in a chunk
        self._frames = 0  # analyser frames seen
        self._chunks = 0  # chunks run
        self._last_p = 0.0  # probability of the last chunk run
        chunk_s = self._chunk / self.model_rate_hz
        self._peak = MIN_CHUNK_DBFS
        self._noise: float | None = None
        self._peak_decay = PEAK_DECAY_DB_PER_S * chunk_s
        self._noise_rise = NOISE_RISE_DB_PER_S * chunk_s
        self.gain_db = 0.0  # the gain applied to the last chunk
        # the renewed state's renewal, counted in chunks
        self._renew_quiet = round(RENEW_QUIET_S / chunk_s)
        self._renew_every = round(RENEW_EVERY_S / chunk_s)
        self._renew_warm = round(RENEW_WARM_S / chunk_s)
        self._quiet = 0  # chunks in a row the renewed state called a pause (under P_RENEW)
        self._since_renew = 0  # chunks since it was last renewed (or since the start)
        self._warm = 0  # chunks a new state has warmed up on

    def frame_probs(self, frames: np.ndarray) -> list[float]:
        """Probabilities for a block of whole analyser frames (n x frame_len samples in int16
        units, after the channel's gain), in order."""
        n = len(frames)
        x = frames.reshape(-1).astype(np.float32)
        if self._decimator is not None:
            x = self._decimator.process(x)
        x *= 1.0 / 32768.0
        x = np.concatenate((self._pending, x)) if len(self._pending) else x
        done = self._chunks
        c = self._chunk
        n_chunks = len(x) // c
        probs = self._run(x[: n_chunks * c].reshape(n_chunks, c)) if n_chunks else []
        self._pending = x[n_chunks * c :].copy()
        self._chunks += n_chunks
        out = []
        fl, g0 = self._frame_len, self._frames
        last = self._last_p
        for g in range(g0, g0 + n):
            k = (g + 1) * fl // c - 1 - done  # the last chunk that ended within frame g, in this block
            out.append(probs[k] if k >= 0 else last)
        if probs:
            self._last_p = probs[-1]
        self._frames += n
        return out

    def _gain(self, chunk: np.ndarray) -> float:
        """The input gain (dB) for the next chunk, from its level and the levels before it."""
        level = 10.0 * math.log10(float(np.dot(chunk, chunk)) / len(chunk) + 1e-12)
        level = max(level, MIN_CHUNK_DBFS)
        self._peak = max(level, self._peak - self._peak_decay)
        self._noise = level if self._noise is None else min(level, self._noise + self._noise_rise)
        return max(min(TARGET_DBFS - self._peak, NOISE_CAP_DBFS - self._noise, MAX_GAIN_DB), 0.0)

    def _run(self, chunks: np.ndarray) -> list[float]:
        """Silero's probability for each chunk (rows), from the states carried across calls
        (see "State drift" in the module docstring)."""
        n, ctx = len(chunks), self._context_len
        inp = np.empty((n, ctx + self._chunk), dtype=np.float32)
        for k in range(n):
            gain_db = self.gain_db = self._gain(chunks[k])
            row = chunks[k] * np.float32(10.0 ** (gain_db / 20.0)) if gain_db > 0.0 else chunks[k]
            inp[k, ctx:] = np.clip(row, -1.0, 1.0)
            inp[k, :ctx] = self._context
            self._context = inp[k, -ctx:]
        out = []
        run, sr = self._session.run, self._sr
        for k in range(n):
            states = self._states
            if states.shape[1] == 2 and self._quiet >= self._renew_quiet and self._since_renew >= self._renew_every:
                states = np.concatenate((states, np.zeros_like(states[:, :1])), axis=1)  # a new state warms up
                self._warm = 0
            probs, self._states = run(None, {"input": inp[(k,) * states.shape[1], :], "state": states, "sr": sr})
            kept, renewed = float(probs[0, 0]), float(probs[1, 0])
            if states.shape[1] == 3:
                self._warm += 1
                if self._warm >= self._renew_warm:  # the new state takes over the renewed one
                    self._states = self._states[:, (0, 2)].copy()  # (C order: the index alone gives a strided copy)
                    self._since_renew = self._quiet = 0
            self._quiet = self._quiet + 1 if renewed < P_RENEW else 0
            self._since_renew += 1
            out.append(renewed if renewed >= P_WEAK else min(kept, renewed))
        return out


def fuse(
    strong: bool, weak: bool, p: float, snr_db: float, speaking: bool, echo_audible: bool = False
) -> tuple[bool, bool]:
    """The fused (strong, weak) evidence of one frame from the analyser's own, Silero's
    probability `p`, the frame's level over the noise floor `snr_db` and whether an
    utterance is running: a high probability starts an utterance (P_START, on a frame above
    the floor), a lower one keeps a running one as strong evidence (P_KEEP), a middle one is
    weak evidence (P_WEAK), and a low one is no evidence at all (below P_VETO_START outside
    an utterance, P_VETO inside one), whatever the energy and webrtcvad path says (music on
    hold, office transients); inside an utterance the analyser's weak evidence alone keeps it
    going only while the probability is at least P_TAIL. With `echo_audible` (the agent's
    echo does not explain the frame's level but is within ECHO_AUDIBLE_DB under the floor,
    or above it) Silero may be hearing the agent: it only takes evidence away."""
    if p >= P_KEEP if speaking else (p >= P_START and snr_db >= START_SNR_DB):
        fused = True, True
    elif p < (P_VETO if speaking else P_VETO_START):
        return False, False
    elif p >= P_WEAK:
        fused = strong, True
    elif speaking and not strong and p < P_TAIL:
        return False, False  # the analyser's weak evidence alone, which Silero does not hear ("Tails")
    else:
        return strong, weak
    return (fused[0] and strong, fused[1] and weak) if echo_audible else fused
