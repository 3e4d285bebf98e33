"""The agent's own voice on the customer channel: tx->rx coupling (sidetone, hybrid echo).

A headset amplifier's receive tap carries sidetone and analogue lines carry hybrid echo: the
agent's `tx` comes back on `rx` 6-25 dB down, 0-250 ms late. Customer speech is what `tx`
does not explain, so the rx analyser asks this estimator, per frame, how loud the echo of
the agent's recent frames can be, and counts a frame as customer speech only when it is a
margin above that.

Everything works on frame levels (dBFS), Geigel-style: no sample-level adaptive filter.
For every lag d = 0 .. ceil(250 ms / frame) the estimator keeps, over the last
`WINDOW_S` of frames where the agent talked (speech evidence on tx d frames earlier), the
difference rx level(k) - tx level(k - d). Customer speech and line noise only ever *add*
power to rx, so a low quantile of that difference is an upper bound of the coupling at lag
d that double talk does not lift (as long as the customer is silent in more than
`QUANTILE` of the agent's speech frames), and at the true lag, where the echo follows tx,
it is the coupling itself. The lag with the largest bound is the delay; the echo is
"known" when the differences there are consistent (spread <= KNOWN_SPREAD_DB) and the
echo stands out of the rx noise. Then the echo predicted for rx frame k is
tx level(k - d) + coupling over the delay and its two neighbours (a frame boundary cuts a
delay in two), and customer speech must be `margin_db` (MARGIN_DB plus the spread) above
it. A path is only chosen once every lag of the range has its rows: until then the best
of the short lags seen so far can look consistent (the echo of a 200 ms delay has not
arrived in their rows yet) and would set the prior aside. A known echo path is kept
through double talk (when the differences spread out); the window slides, so a coupling
that changes (microphone moved, call transferred) is followed within a few seconds of
agent speech.

Before an echo is known, every lag carries its bound, and before `MIN_ROWS_S` of agent
speech `PRIOR_DB` (the loudest sidetone the station is specified for), so the first words
of a call do not read as customer speech either. The analyser calls `update` at its fixed
update frames, so the result does not depend on how the audio is cut into blocks.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from itertools import islice
from operator import add

import numpy as np

MAX_DELAY_S = 0.25
WINDOW_S = 4.0  # agent speech frames the coupling is estimated over
MIN_ROWS_S = 0.5  # agent speech needed before the estimate replaces the prior
QUANTILE = 0.15
SPREAD_QUANTILE = 0.35
PRIOR_DB = -6.0
MARGIN_DB = 4.0  # customer speech must be this far above the predicted echo...
MAX_MARGIN_DB = 12.0  # ...plus the echo's own spread, up to this
KNOWN_SPREAD_DB = 6.0  # the estimate is reported when the echo is this consistent...
VISIBLE_DB = 6.0  # ...and this far above the rx noise floor


class EchoEstimator:
    """Per frame: `frame(rx_level, tx_level, tx_speech, floor_dbfs)` -> the echo level rx
    can carry (or a bound of it that decides the same, see `frame`);
    `update(rx_floor_dbfs)` at the analyser's update frames; `margin_db` the margin above the
    echo that customer speech needs; `coupling_db` / `delay_ms` the estimate (None: unknown).

    Cost: `frame` runs on every rx frame of the live path, so it is plain Python on a few
    floats: a row is the rx level and a copy of the lag line (the tx level d frames ago at
    [d] where the agent talked then, else -inf), written into a preallocated `array` ring
    that numpy reads without a copy, lag-major (lag d of every row at [d * window ...]), so
    the update's rows per lag are contiguous. The differences rx - tx(d) (+inf where the
    agent did not talk) are formed only at the update frames, once for the whole window,
    and the quantile ranks come from tables made once."""

    def __init__(self, frame_s: float):
        self.frame_s = frame_s
        self.lags = int(math.ceil(MAX_DELAY_S / frame_s)) + 1
        self.window = max(8, round(WINDOW_S / frame_s))
        self.min_rows = max(4, round(MIN_ROWS_S / frame_s))
        self._tx = deque([SILENCE] * self.lags, maxlen=self.lags)  # tx level d frames ago at [d]
        self._tx_talk = array("d", [_NEG_INF] * self.lags)  # the same where the agent talked, else -inf
        self._since_talk = self.lags  # frames since the last agent speech frame
        # The last `window` agent frames, in a ring (their order does not matter: only
        # quantiles are taken): the lag line at column k of `_ring_tx`, the rx level at [k].
        self._ring_tx = array("d", bytes(8 * self.window * self.lags))
        self._ring_rx = array("d", bytes(8 * self.window))
        self._cols_tx = np.frombuffer(self._ring_tx).reshape(self.lags, self.window)
        self._rows_rx = np.frombuffer(self._ring_rx)
        self._diffs = np.full((self.lags, self.window + 1), _INF)  # update's work buffer
        # the ranks of the quantiles among k values, and the flat offsets of the full
        # window's rows in `_diffs`
        self._q_rank = [int(k * QUANTILE) for k in range(self.window + 1)]
        self._s_rank = [int(k * SPREAD_QUANTILE) for k in range(self.window + 1)]
        self._offsets = [d * (self.window + 1) for d in range(self.lags)]
        self._n_rows = 0  # rows written so far
        self._fresh = False  # rows written since the last update
        self._coupling = [PRIOR_DB] * self.lags  # per lag, when no echo path is known
        self._c_max = PRIOR_DB  # their largest
        self._uniform: float | None = PRIOR_DB  # the coupling of every lag, when they are all equal
        self._path: tuple[int, int, float] | None = None  # (first lag, last lag + 1, coupling dB)
        self.margin_db = MARGIN_DB
        self.coupling_db: float | None = None
        self.delay_ms: int | None = None

    def frame(self, rx_level: float, tx_level: float, tx_speech: bool, floor_dbfs: float = -math.inf) -> float:
        """The echo level the agent's recent frames can put on rx at this frame. The caller
        compares it only with `rx_level - margin_db` and with `floor_dbfs`; when an upper
        bound of it is below both (the agent quiet), that bound is returned instead: the
        same two answers, without the per-lag sum. (No floor: always the level itself.)"""
        tx = self._tx
        tx.appendleft(tx_level)  # (the oldest drops out)
        lags = self.lags
        if tx_speech:
            talk = self._tx_talk
            talk.pop()
            talk.insert(0, tx_level)
            since = self._since_talk = 0
        else:
            since = self._since_talk = self._since_talk + 1
            if since <= lags:  # (after that the line is all -inf: nothing to shift)
                talk = self._tx_talk
                talk.pop()
                talk.insert(0, _NEG_INF)
        if since < lags:  # the agent talked within the delay range: a row
            k = self._n_rows % self.window
            self._ring_tx[k :: self.window] = self._tx_talk
            self._ring_rx[k] = rx_level
            self._n_rows += 1
            self._fresh = True
        if self._path is not None:
            d0, d1, c = self._path
            return max(islice(tx, d0, d1)) + c
        if self._uniform is not None:  # the same as the per-lag form: x + c is monotonic in x
            return max(tx) + self._uniform
        # (rounding is monotonic: no tx(d) + c(d) exceeds max(tx) + max(c))
        bound = max(tx) + self._c_max
        if bound <= floor_dbfs and rx_level > bound + self.margin_db:
            return bound
        return max(map(add, tx, self._coupling))

    def update(self, rx_floor_dbfs: float) -> None:
        """Re-estimate the coupling from the rows of the window."""
        n = min(self._n_rows, self.window)
        if n < self.min_rows or not self._fresh:
            return
        self._fresh = False
        rx = self._rows_rx[:n]
        # rx - tx(d) per lag d, a row each (+inf where the agent did not talk), each sorted,
        # with one more +inf at the end: the first +inf of a row is then its count. (A full
        # window reuses its buffer: after the sort the last column is that +inf again.)
        if n == self.window:
            diffs, offsets = self._diffs, self._offsets
        else:
            diffs = np.empty((self.lags, n + 1))
            diffs[:, n] = _INF
            offsets = [d * (n + 1) for d in range(self.lags)]
        np.subtract(rx, self._cols_tx[:, :n], out=diffs[:, :n])
        diffs.sort(axis=1)
        count = diffs.argmax(axis=1).tolist()  # agent frames per lag
        min_rows = self.min_rows
        all_ok = min(count) >= min_rows
        if not all_ok:
            ok = [k >= min_rows for k in count]
            if True not in ok:
                return
        # the QUANTILE value of each row (flat indices: row offset + rank)
        lo = diffs.take(list(map(add, offsets, map(self._q_rank.__getitem__, count)))).tolist()
        if not all_ok:
            lo = [x if k else _NEG_INF for x, k in zip(lo, ok, strict=False)]
        c = max(lo)
        d = lo.index(c)  # the first of the largest, as np.argmax
        spread = diffs.item(d, self._s_rank[count[d]]) - c
        if all_ok and spread <= KNOWN_SPREAD_DB and self._median(rx) > rx_floor_dbfs + VISIBLE_DB:
            # A consistent echo: its path is the best lag and its neighbours (a frame
            # boundary cuts the delay in two).
            self._path = (max(0, d - 1), d + 2, c)
            self.margin_db = min(MARGIN_DB + max(spread, 0.0), MAX_MARGIN_DB)
            self.coupling_db = round(c, 1)
            self.delay_ms = round(d * self.frame_s * 1000.0)
        elif self._path is None:
            # No consistent echo yet (double talk, or no echo at all): the bound of every lag.
            self._coupling = lo if all_ok else [x if k else PRIOR_DB for x, k in zip(lo, ok, strict=False)]
            self._c_max = max(self._coupling)
            self._uniform = None
        # else: keep the last consistent echo path through double talk

    @staticmethod
    def _median(x: np.ndarray) -> float:
        """The (upper) median: the n // 2-th smallest of x (= np.partition(x, n // 2)[n // 2])."""
        k = len(x) // 2
        y = x.copy()
        y.partition(k)
        return y.item(k)


_INF = float("inf")
_NEG_INF = float("-inf")
SILENCE = -200.0
