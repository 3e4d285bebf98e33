"""Remote commands received on `hs/<site>/<station>/cmd/<name>`.

`CommandHandler.handle(name, payload)` is pure apart from the callbacks it is given: it
validates the payload, runs the command and returns the reply dict that the publisher
sends on `cmd/<name>/reply`. A malformed or unknown command gets `{"ok": false, "error":
"..."}` and changes nothing.

Payload: a JSON object (an empty payload means `{}`), at most 16 KiB. Every command accepts
an optional `"id"` (string or integer) that the reply echoes, so a caller can match replies.

| command      | payload                                    | reply fields                |
|--------------|--------------------------------------------|-----------------------------|
| `ping`       | `{}`                                       | `pong: true`, `ts`          |
| `get-config` | `{}`                                       | `config` (from get_config)  |
| `set-config` | `{"set": {key: number}, "unset": [key]}`   | `overrides` now in force    |
| `led-test`   | `{}`                                       |                             |
| `restart`    | `{}`                                       |                             |
| `agent`      | `{"agent": "name"}` or `{"agent": null}`   | `agent` now at the desk     |

`set-config` accepts profile timing keys only (firmware.config.profiles.TIMING_KEYS, checked
by `check_overrides` like a `[profile]` table in the config file: every value a finite
number in range; `NaN`/`Infinity` are refused already when the JSON is parsed). The merged
overrides are written to `<state_dir>/overrides.json` (atomically: temp file, fsync,
rename) only after `apply_overrides` accepted them (it builds the profile, which refuses
contradictions such as hold_warn_s above hold_limit_s), so a rejected change gets an error
reply and leaves both the running station and the file as they were.

At start a persisted `overrides.json` is checked the same way. Persisted overrides that
cannot be read or no longer pass the checks never stop the station from starting: they are
set aside to `overrides.json.invalid-<UTC time>` and the station runs on its config file
(the service reports a `storage` fault).
`agent` logs an agent in (a non-empty printable name of at most 64 characters) or out
(null); it is kept in `<state_dir>/agent.json` (written the same way), so it survives a
restart and wins over the config's `station.agent`; `set_agent` makes the station's events,
status and state carry it. A persisted agent that cannot be read or is invalid never stops the
station either: it is set aside to `agent.json.invalid-<UTC time>` (storage fault) and the
config's `station.agent` is used.
`led-test` holds the rules loop about a second (each LED on in turn), so at most one runs per
LED_TEST_INTERVAL_S; another within that time gets an error reply.
`restart` must only *request* a restart (set a flag the main loop reads): the reply is
sent after `handle()` returns.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from firmware.config.profiles import TIMING_KEYS, check_overrides
from firmware.config.settings import name_problem
from firmware.errors import CommandError, ConfigError, StorageError
from firmware.protocol.envelope import iso_utc
from firmware.reporting.statefile import read_state_text

MAX_PAYLOAD_BYTES = 16 * 1024
LED_TEST_INTERVAL_S = 5.0  # a led-test holds the rules loop ~1 s: at most one per interval
OVERRIDES_FILE = "overrides.json"
AGENT_FILE = "agent.json"
COMMANDS = ("ping", "get-config", "set-config", "led-test", "restart", "agent")
_ALLOWED_KEYS = {
    "ping": set(),
    "get-config": set(),
    "set-config": {"set", "unset"},
    "led-test": set(),
    "restart": set(),
    "agent": {"agent"},
}

log = logging.getLogger(__name__)


def _no_constants(name: str):
    # json accepts NaN, Infinity and -Infinity, which are not JSON and not numbers we accept.
    raise ValueError(f"{name} is not a number")


def _loads(text: str):
    return json.loads(text, parse_constant=_no_constants)


def read_overrides(state_dir: str | Path) -> tuple[dict, str | None]:
    """(overrides, None), or ({}, why the persisted file is invalid); StorageError if unreadable."""
    path = Path(state_dir) / OVERRIDES_FILE
    try:
        text = read_state_text(path)
    except (FileNotFoundError, NotADirectoryError):  # none yet (a bad state_dir is the outbox's to report)
        return {}, None
    except OSError as exc:
        raise StorageError(f"{path}: cannot read persisted overrides ({exc.strerror})") from None
    except ValueError as exc:  # not UTF-8
        return {}, f"{path}: invalid persisted overrides (not UTF-8 text: {str(exc)[:120]})"
    try:
        data = _loads(text)
    except (ValueError, RecursionError) as exc:
        return {}, f"{path}: invalid persisted overrides (not JSON: {str(exc)[:120]})"
    problems = check_overrides(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return {}, f"{path}: invalid persisted overrides ({problems[0]}{more})"
    return data, None


def load_overrides(state_dir: str | Path) -> dict:
    """The profile overrides persisted by `set-config` ({} if none); StorageError if the file
    cannot be read or holds invalid overrides (`CommandHandler` then sets it aside)."""
    data, problem = read_overrides(state_dir)
    if problem:
        raise StorageError(problem)
    return data


def load_agent(state_dir: str | Path) -> str | None:
    """The agent persisted by the `agent` command: None if it never ran, "" if logged out;
    StorageError if the file is unreadable or holds no valid name (`load_agent_or_set_aside`
    is what the service uses)."""
    path = Path(state_dir) / AGENT_FILE
    try:
        data = _loads(read_state_text(path))
    except (FileNotFoundError, NotADirectoryError):  # none yet (a bad state_dir is the outbox's to report)
        return None
    except OSError as exc:
        raise StorageError(f"{path}: cannot read the persisted agent ({exc.strerror})") from None
    except (ValueError, RecursionError) as exc:
        raise StorageError(f"{path}: cannot read the persisted agent ({str(exc)[:120]})") from None
    agent = data.get("agent", "") if isinstance(data, dict) else 0
    if agent is None:
        return ""
    why = name_problem(agent)
    if why or not isinstance(agent, str):  # name_problem refuses anything but a string
        raise StorageError(f"{path}: invalid persisted agent: 'agent' {why}")
    return agent


def load_agent_or_set_aside(state_dir: str | Path) -> tuple[str | None, str | None]:
    """(agent as `load_agent` returns it, None), or (None, why) when the persisted agent is
    unreadable or invalid: the file is then set aside (`agent.json.invalid-<UTC time>`) and the
    station runs with the config's `station.agent`; `why` is the one line for the fault."""
    try:
        return load_agent(state_dir), None
    except StorageError as exc:
        where = set_aside(Path(state_dir) / AGENT_FILE)
        return None, f"{exc}; running with the config's station.agent, the file {where}"


def set_aside(path: Path) -> str:
    """Move an invalid persisted file to `<name>.invalid-<UTC time>` (kept for inspection);
    returns where it went, for the fault's one line."""
    aside = path.with_name(f"{path.name}.invalid-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    try:
        os.replace(path, aside)
        return f"moved to {aside.name}"
    except OSError as exc:
        return f"could not be moved aside ({exc.strerror})"


class CommandHandler:
    """Validates and runs remote commands; see the module docstring for the protocol."""

    def __init__(
        self,
        get_config: Callable[[], dict],
        apply_overrides: Callable[[dict], None],
        led_test: Callable[[], None],
        restart: Callable[[], None],
        state_dir: str | Path,
        set_agent: Callable[[str | None], None] | None = None,
    ):
        self.get_config = get_config
        self.set_agent = set_agent
        self.apply_overrides = apply_overrides
        self.led_test = led_test
        self.restart = restart
        self.state_dir = Path(state_dir)
        self.dropped: str | None = None  # why persisted overrides were set aside at start, if they were
        self._led_test_t: float | None = None  # monotonic time of the last led-test
        try:
            self.overrides = load_overrides(self.state_dir)
        except StorageError as exc:  # never a reason not to start: run on the config file's values
            self.overrides = {}
            self.drop_overrides(str(exc))

    def drop_overrides(self, reason: str) -> str:
        """Set the persisted overrides aside (`overrides.json.invalid-<UTC time>`, kept for
        inspection) and forget them; returns a one-line description for the fault."""
        where = set_aside(self.state_dir / OVERRIDES_FILE)
        self.overrides = {}
        self.dropped = f"{reason}; running on the config file's values, the file {where}"
        return self.dropped

    def handle(self, name: str, payload: bytes) -> dict:
        """Run one command; always returns a reply dict with `ok`, `cmd`, `id` and maybe `error`."""
        request_id = None
        try:
            request = _parse(name, payload)
            request_id = request.pop("id", None)
            result = getattr(self, "_" + name.replace("-", "_"))(request)
            return {"ok": True, "cmd": name, "id": request_id, **result}
        except (CommandError, StorageError) as exc:
            return {"ok": False, "cmd": name, "id": request_id, "error": str(exc)}
        except ConfigError as exc:  # apply_overrides built a profile that contradicts itself
            return {"ok": False, "cmd": name, "id": request_id, "error": f"{name}: {'; '.join(exc.problems)}"}
        except Exception as exc:  # a callback failed: report it, the station keeps running
            return {"ok": False, "cmd": name, "id": request_id, "error": f"{name} failed: {type(exc).__name__}: {exc}"}

    def _ping(self, _request: dict) -> dict:
        return {"pong": True, "ts": iso_utc(time.time())}

    def _get_config(self, _request: dict) -> dict:
        return {"config": self.get_config()}

    def _led_test(self, _request: dict) -> dict:
        now = time.monotonic()
        if self._led_test_t is not None and now - self._led_test_t < LED_TEST_INTERVAL_S:
            raise CommandError(
                f"led-test: at most one led-test every {LED_TEST_INTERVAL_S:g} s "
                f"(the last one ran {now - self._led_test_t:.1f} s ago)"
            )
        self._led_test_t = now
        self.led_test()
        return {}

    def _restart(self, _request: dict) -> dict:
        self.restart()
        return {}

    def _set_config(self, request: dict) -> dict:
        changes = request.get("set", {})
        unset = request.get("unset", [])
        if not isinstance(changes, dict):
            raise CommandError("set-config: 'set' must be an object of profile keys")
        if not isinstance(unset, list) or not all(isinstance(k, str) for k in unset):
            raise CommandError("set-config: 'unset' must be a list of profile keys")
        if not changes and not unset:
            raise CommandError("set-config: nothing to change (give 'set' and/or 'unset')")
        problems = check_overrides(changes)
        problems += [f"profile.{k}: unknown profile key" for k in unset if k not in TIMING_KEYS]
        if problems:
            raise CommandError(
                f"set-config: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            )
        merged = {k: v for k, v in self.overrides.items() if k not in unset}
        merged.update(changes)
        tmp = self._write_tmp(merged)
        try:
            self.apply_overrides(dict(merged))
        except Exception:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.state_dir / OVERRIDES_FILE)
        self.overrides = merged
        return {"overrides": dict(merged)}

    def _agent(self, request: dict) -> dict:
        if "agent" not in request:
            raise CommandError("agent: give 'agent': a name to log in, or null to log out")
        agent = request["agent"]
        if agent is not None:
            why = name_problem(agent)
            if why:
                raise CommandError(f"agent: 'agent' {why}")
        if self.set_agent is None:
            raise CommandError("agent: not supported by this station")
        tmp = self._write_tmp({"agent": agent}, AGENT_FILE)
        try:
            self.set_agent(agent)
        except Exception:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.state_dir / AGENT_FILE)
        return {"agent": agent}

    def _write_tmp(self, data: dict, name: str = OVERRIDES_FILE) -> Path:
        tmp = self.state_dir / (name + ".tmp")
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise StorageError(f"{tmp}: cannot write {name.removesuffix('.json')} ({exc.strerror})") from None
        return tmp


def _parse(name: str, payload: bytes) -> dict:
    if name not in COMMANDS:
        raise CommandError(f"unknown command {name[:64]!r} (known: {', '.join(COMMANDS)})")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandError(f"{name}: payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit")
    if not payload.strip():
        return {}
    try:
        request = _loads(payload.decode("utf-8"))
    except RecursionError:
        raise CommandError(f"{name}: payload is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise CommandError(f"{name}: payload is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(request, dict):
        raise CommandError(f"{name}: payload must be a JSON object, got {type(request).__name__}")
    rid = request.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (str, int)) or len(str(rid)) > 128):
        raise CommandError(f"{name}: 'id' must be a string or integer of at most 128 characters")
    unknown = set(request) - _ALLOWED_KEYS[name] - {"id"}
    if unknown:
        raise CommandError(f"{name}: unknown key(s) {', '.join(sorted(unknown))}")
    return request
