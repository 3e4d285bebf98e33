"""The station's one exception hierarchy.

Every error a user can cause is a `StationError` whose message is one line naming the file
or field and the reason; the CLI prints it and exits with the error's `exit_code`.
"""


class StationError(Exception):
    """Root of every error the station raises on purpose."""

    exit_code = 1


class InputError(StationError, ValueError):
    """A scenario, WAV or other input file is missing, unreadable or malformed."""

    exit_code = 2


class ScenarioError(InputError):
    """A scenario file has an unknown key, a bad time or an unknown input."""


class AudioFormatError(InputError):
    """A WAV file is not 16-bit PCM mono at a supported rate."""


class ConfigError(StationError, ValueError):
    """The configuration has a wrong type, an unknown key or an out-of-range value."""

    exit_code = 78  # EX_CONFIG

    def __init__(self, problems, source="config"):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.source = str(source)
        first = self.problems[0] if self.problems else "invalid"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{self.source}: {first}{more}")


class AudioError(StationError):
    """The audio device failed, disappeared or cannot be opened."""


class WrongUserError(StationError):
    """Run as root where the files belong to the service user: it would leave root-owned state."""

    exit_code = 2


class GpioError(StationError):
    """A GPIO pin cannot be set up or read."""


class BrokerError(StationError):
    """The MQTT broker cannot be reached or refused the station."""


class StorageError(StationError):
    """The state directory or the outbox cannot be written."""


class CommandError(StationError, ValueError):
    """A remote command is malformed, unknown or out of range; it changes nothing."""
