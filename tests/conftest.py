"""Shared pytest set-up. Each area keeps its fixtures in tests/fixtures_<area>.py, listed here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = [
    "fixtures_corpus",
    "fixtures_mqtt",
    "fixtures_station",
    "fixtures_fleet",
    "fixtures_pulse",
]
