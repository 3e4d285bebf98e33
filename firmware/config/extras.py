"""Optional extras of the station: whether one is installed, for the settings' validation.

The `[silero]` extra (onnxruntime, plus the `silero-vad` wheel installed without its torch
dependency) provides `analysis.second_stage = "silero"` (`firmware.analysis.neural`). The
check lives here, in the config layer, so a setting that needs a missing extra is a config
error before anything is built.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SILERO_STREAMING = "silero_vad.onnx"  # the ONNX model in the silero_vad package's data/ (run in its 8 kHz mode)
SILERO_INSTALL = (
    "pip install 'headset-station[silero]' && pip install --no-deps 'silero-vad>=6.2';"
    " on a Pi installed by tools/install-pi: sudo tools/install-pi --with-silero"
)


def silero_model(name: str) -> Path | None:
    """The ONNX model file `name` in the installed silero_vad package's data, or None. Found
    from the package's location without importing it (its __init__ imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / name
        if path.is_file():
            return path
    return None


def silero_missing() -> str | None:
    """Why the Silero second stage cannot run on this install (None: it can)."""
    for module in ("onnxruntime", "silero_vad"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (install the [silero] extra: {SILERO_INSTALL})"
    if silero_model(SILERO_STREAMING) is None:
        return f"the silero_vad package has no data/{SILERO_STREAMING} (install the [silero] extra: {SILERO_INSTALL})"
    return None
