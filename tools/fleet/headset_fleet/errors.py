"""The fleet tools' one exception hierarchy.

Every error a user can cause is a `FleetError` whose message is one line naming the file,
URL or option and the reason; `headset-fleet` prints it and exits with its `exit_code`.
Errors raised by the shared station modules (`firmware.protocol`, `firmware.config`) are
the station's `StationError`s and are reported the same way.
"""


class FleetError(Exception):
    """Root of every error the fleet tools raise on purpose."""

    exit_code = 1


class FleetInputError(FleetError, ValueError):
    """A bad argument, URL or input file."""

    exit_code = 2


class InventoryError(FleetInputError):
    """A fleet inventory CSV has a missing column, a duplicate id or a bad value."""


class FleetBrokerError(FleetError):
    """The MQTT broker cannot be reached or refused the tool."""


class FleetStorageError(FleetError):
    """An output directory or file cannot be written."""


class FleetStoreError(FleetStorageError):
    """The central event store (SQLite or PostgreSQL) cannot be opened or written."""
