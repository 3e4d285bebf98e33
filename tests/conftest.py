"""Shared pytest set-up. Each area keeps its fixtures in tests/fixtures_<area>.py, listed here."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = [
    "fixtures_corpus",
    "fixtures_mqtt",
    "fixtures_station",
    "fixtures_fleet",
    "fixtures_pulse",
    "fixtures_storage",
]

# Fixtures that start a real service (Mosquitto, PostgreSQL, PulseAudio): a test that uses
# one is an integration test. `pytest -m "not integration"` runs the fast unit tests alone;
# CI runs everything. A test that starts such a service by other means marks itself with
# `@pytest.mark.integration` (or a module-level `pytestmark`).
SERVICE_FIXTURES = {
    "mqtt_broker",
    "mqtt_broker_factory",
    "fleet_broker",
    "fleet_broker_factory",
    "fleet_postgres",
    "fleet_pg_url",
    "pulse",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
