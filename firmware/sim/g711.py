"""G.711 companding (ITU-T G.711): mu-law and A-law codes <-> 16-bit linear samples.

Call recordings from telephone systems are often stored as 8 kHz G.711 WAV files (format
tags 7, mu-law, and 6, A-law); `firmware.sim.wav.read_recording` decodes them with these
tables, and tools/bench uses the mu-law round trip to put its corpus through a telephone
line.
"""

from __future__ import annotations

import numpy as np

MULAW_BIAS, MULAW_CLIP = 0x84, 32635


def mulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> uint8 mu-law codes (the standard segment/mantissa coding)."""
    x = np.asarray(pcm, dtype=np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), MULAW_CLIP) + MULAW_BIAS
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    """uint8 mu-law codes -> int16 samples (0xFF and 0x7F are 0; 0x80 is +32124)."""
    c = ~np.asarray(codes, dtype=np.int32) & 0xFF
    exponent = (c >> 4) & 0x07
    mag = (((c & 0x0F) << 3) + MULAW_BIAS) << exponent
    mag -= MULAW_BIAS
    return np.where(c & 0x80, -mag, mag).astype(np.int16)


def alaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> uint8 A-law codes (even bits inverted, as on the line)."""
    x = np.asarray(pcm, dtype=np.int32)
    sign = np.where(x >= 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32767) >> 3  # 12 bits of magnitude
    exponent = np.clip(np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 4, 0, 7)
    mantissa = (mag >> np.maximum(exponent, 1)) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)


def alaw_decode(codes: np.ndarray) -> np.ndarray:
    """uint8 A-law codes -> int16 samples (0xD5 is +8, 0x55 is -8)."""
    a = np.asarray(codes, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    mag = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, mag, -mag).astype(np.int16)
