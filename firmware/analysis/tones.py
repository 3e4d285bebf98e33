"""Call-progress tone detection (busy / reorder) on the customer channel.

Per frame, a vectorised Goertzel (the DFT at the plan's frequencies, computed for a whole
block as one matrix product with precomputed cos/sin tables) gives the share of the frame's
power that sits in the tone. A frame is "tone on" when that share is high; the on/off run
lengths are then matched to the plan's cadence, and the tone is confirmed after
`CONFIRM_CYCLES` whole on/off cycles. Speech never holds a fixed frequency with a steady
cadence for that long, so it does not fire.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.analysis.levels import dbfs_to_power


@dataclass(frozen=True)
class Cadence:
    name: str  # reported tone name, e.g. "busy-cn"
    on_s: float
    off_s: float


@dataclass(frozen=True)
class TonePlan:
    freqs_hz: tuple  # component frequencies (all must be present)
    cadences: tuple  # Cadence, ...


TONE_PLANS = {
    "cn": TonePlan((450.0,), (Cadence("busy-cn", 0.35, 0.35),)),
    "na": TonePlan((480.0, 620.0), (Cadence("busy-na", 0.5, 0.5), Cadence("reorder-na", 0.25, 0.25))),
    "etsi": TonePlan((425.0,), (Cadence("busy-etsi", 0.5, 0.5),)),
}

CONFIRM_CYCLES = 2  # whole on/off cycles before the tone is reported
TONE_SHARE = 0.6  # share of frame power in the tone for a frame to be "on"
MIN_TONE_DBFS = -60.0  # quieter frames are never "on"
TOLERANCE_S = 0.08  # + 20% of the nominal: frame quantisation and line jitter
REARM_S = 2.0  # a run this long (silence or steady tone) ends a confirmed tone


class ToneDetector:
    """Streaming busy/reorder detector for one plan on frames of `frame_len` at `rate_hz`."""

    def __init__(self, plan: str, rate_hz: int, frame_len: int):
        self.plan = TONE_PLANS[plan]
        self.frame_s = frame_len / rate_hz
        n = np.arange(frame_len)
        w = 2.0 * np.pi * np.asarray(self.plan.freqs_hz)[None, :] / rate_hz
        # DFT at each frequency: columns cos, then sin. |X|^2 * 2/(L * sum x^2) = 1 for a pure tone.
        # float64, as the analyser's frames (exact int16 samples): one cast fewer per block.
        self._basis = np.concatenate((np.cos(w * n[:, None]), np.sin(w * n[:, None])), axis=1)
        self._basis_t = np.ascontiguousarray(self._basis.T)  # a row per cos/sin column
        self._nf = len(self.plan.freqs_hz)
        self._scale = 2.0 / frame_len
        self._min_energy = dbfs_to_power(MIN_TONE_DBFS) * frame_len
        self._min_power = float(dbfs_to_power(MIN_TONE_DBFS))
        self._on_factor = TONE_SHARE * frame_len * frame_len / 2.0
        self.state = False  # is the current run "on"
        self.run_frames = 0  # length of the current run
        self.segments: list[tuple[bool, float]] = []  # recent completed (is_on, seconds), newest last
        self.confirmed: str | None = None  # name of the tone being reported until it stops

    def tone_share(self, frames: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """Per frame: the share of the frame's power (`energy` = sum of squares) that is in the
        plan's frequencies, 1.0 for exactly the tone; 0 when one component is missing (a
        dual tone needs both) or the frame is quieter than MIN_TONE_DBFS. The readable form
        of `tone_on`."""
        xy = frames @ self._basis  # (n_frames, 2 * nf)
        p = xy[:, : self._nf] ** 2 + xy[:, self._nf :] ** 2
        share = p * self._scale / np.maximum(energy, 1e-9)[:, None]
        total = share.sum(axis=1)
        # Every component must carry a fair part, so one matching frequency is not enough.
        balanced = share.min(axis=1) * self._nf >= 0.3 * total
        return np.where(balanced & (energy >= self._min_energy), total, 0.0)

    def tone_on(self, frames: np.ndarray, power: np.ndarray) -> np.ndarray:
        """Per frame: is it the tone (share >= TONE_SHARE, balanced, loud enough)? `power` is
        the frames' mean square. Same test as tone_share, in as few numpy calls as possible
        (this runs on every block of the customer channel)."""
        xy = frames @ self._basis
        xy *= xy
        nf = self._nf
        p = xy[:, :nf] + xy[:, nf:]
        total = p[:, 0] if nf == 1 else p.sum(axis=1)
        # share = total * 2 / (L * L * power); compare without dividing.
        on = total >= self._on_factor * np.maximum(power, self._min_power)
        if nf > 1:
            on &= p.min(axis=1) * nf >= 0.3 * total
        return on

    def tone_on_list(self, frames: np.ndarray, power: list) -> list:
        """`tone_on` for the live path: one matrix product, the rest in Python floats (a
        30 ms block is one frame, where numpy's per-call cost dominates)."""
        nf = self._nf
        if len(frames) == 1 and nf == 1:  # the live path with one frequency: no list to build
            return [self.tone_on_frame(frames[0], power[0])]
        # One frame (the live path): a matrix-vector product, cheaper to call than matmul.
        xy = [self._basis_t.dot(frames[0]).tolist()] if len(frames) == 1 else (frames @ self._basis).tolist()
        factor, min_power = self._on_factor, self._min_power
        if nf == 1:  # one frequency (cn, etsi): total = cos^2 + sin^2, nothing to balance
            return [
                r[0] * r[0] + r[1] * r[1] >= factor * (p if p > min_power else min_power)
                for r, p in zip(xy, power, strict=False)
            ]
        out = []
        for row, p in zip(xy, power, strict=False):
            comps = [row[k] * row[k] + row[k + nf] * row[k + nf] for k in range(nf)]
            total = sum(comps)
            on = total >= factor * (p if p > min_power else min_power)
            if on:  # every frequency carries its share (a tone pair, not one of its tones)
                on = min(comps) * nf >= 0.3 * total
            out.append(on)
        return out

    def tone_on_frame(self, row: np.ndarray, p: float) -> bool:
        """`tone_on_list` of one frame given flat (`row`: its float64 samples, `p`: its mean
        square), the live path's block: no (1, frame_len) view to make or index."""
        if self._nf > 1:
            return self.tone_on_list(row[None, :], [p])[0]
        r = self._basis_t.dot(row).tolist()
        min_power = self._min_power
        return r[0] * r[0] + r[1] * r[1] >= self._on_factor * (p if p > min_power else min_power)

    def one_frame(self, frame: int, row: np.ndarray | None, p: float) -> tuple[bool, list]:
        """`tone_on_frame` and `process_list` of the live path's one frame (`row`: its float64
        samples, None when it is too quiet to be a tone; `p`: its mean square) in one call:
        whether it is "tone on", and the confirmations [(frame, name)] it completes."""
        on = row is not None and self.tone_on_frame(row, p)
        if not on and not self.state:  # (process_list's usual block, for one frame)
            self.run_frames += 1
            if self.confirmed:
                self._rearm_after_long_run()
            return False, []
        return on, self.process(frame, np.array([on], dtype=bool))

    def process_list(self, first_frame: int, on: list) -> list:
        """`process` for a list of decisions; a block with no tone costs no numpy call."""
        if not self.state and True not in on:
            self.run_frames += len(on)
            if self.confirmed:
                self._rearm_after_long_run()
            return []
        return self.process(first_frame, np.array(on, dtype=bool))

    def process(self, first_frame: int, on: np.ndarray) -> list:
        """Feed per-frame on/off decisions; returns [(frame_index, tone_name)] confirmations."""
        out: list[tuple[int, str]] = []
        if not len(on):
            return out
        if not self.state and not on.any():
            # The usual block: no tone at all, the current "off" run just gets longer.
            self.run_frames += len(on)
            self._rearm_after_long_run()
            return out
        # Run lengths of the block, vectorised: indices where the value changes.
        change = np.flatnonzero(on[1:] != on[:-1]) + 1
        bounds = [0, *change.tolist(), len(on)]
        values = on[np.asarray(bounds[:-1])].tolist()
        for i, v in enumerate(values):
            length = bounds[i + 1] - bounds[i]
            if v == self.state:
                self.run_frames += length
            else:
                self._close_run(first_frame + bounds[i], out)
                self.state = v
                self.run_frames = length
            self._rearm_after_long_run()
        return out

    def _rearm_after_long_run(self) -> None:
        """A long silence or a long steady tone ends a confirmed tone and re-arms."""
        if self.confirmed and self.run_frames * self.frame_s > REARM_S:
            self.confirmed = None
            self.segments.clear()

    def _close_run(self, frame: int, out: list) -> None:
        seconds = self.run_frames * self.frame_s
        self.segments.append((self.state, seconds))
        del self.segments[: -2 * CONFIRM_CYCLES - 1]
        # A run ending now is complete; an "off" run ending means a new "on" starts at `frame`.
        if self.state or self.confirmed:
            return
        segs = self.segments[-2 * CONFIRM_CYCLES :]
        if len(segs) < 2 * CONFIRM_CYCLES or not segs[0][0]:
            return
        for cad in self.plan.cadences:
            if all(_fits(s, cad.on_s if is_on else cad.off_s) for is_on, s in segs):
                self.confirmed = cad.name
                out.append((frame, cad.name))
                return


def _fits(seconds: float, nominal_s: float) -> bool:
    return abs(seconds - nominal_s) <= TOLERANCE_S + 0.2 * nominal_s
