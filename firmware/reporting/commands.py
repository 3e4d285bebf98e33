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

`set-config` accepts profile timing keys only (firmware.config.profiles.TIMING_KEYS, checked
by `check_overrides` like a `[profile]` table in the config file: every value a finite
number in range; `NaN`/`Infinity` are refused already when the JSON is parsed). The merged
overrides are written to `<state_dir>/overrides.json` (atomically: temp file, fsync,
rename) only after `apply_overrides` accepted them (it builds the profile, which refuses
contradictions such as hold_warn_s above hold_limit_s), so a rejected change gets an error
reply and leaves both the running station and the file as they were.

At start a persisted `overrides.json` is checked the same way; an invalid one is logged
and not applied (the station runs on its config file) rather than stopping the station.
`restart` must only *request* a restart (set a flag the main loop reads): the reply is
sent after `handle()` returns.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

from firmware.config.profiles import TIMING_KEYS, check_overrides
from firmware.errors import CommandError, ConfigError, StorageError
from firmware.protocol.envelope import iso_utc

MAX_PAYLOAD_BYTES = 16 * 1024
OVERRIDES_FILE = "overrides.json"
COMMANDS = ("ping", "get-config", "set-config", "led-test", "restart")
_ALLOWED_KEYS = {"ping": set(), "get-config": set(), "set-config": {"set", "unset"},
                 "led-test": set(), "restart": set()}

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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        raise StorageError(f"{path}: cannot read persisted overrides ({exc.strerror})") from None
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
    """The profile overrides persisted by `set-config` ({} if none); an invalid file is logged
    and not applied; StorageError if the file cannot be read at all."""
    data, problem = read_overrides(state_dir)
    if problem:
        log.error("%s; not applied, running on the config file's profile", problem)
    return data


class CommandHandler:
    """Validates and runs remote commands; see the module docstring for the protocol."""

    def __init__(self, get_config: Callable[[], dict], apply_overrides: Callable[[dict], None],
                 led_test: Callable[[], None], restart: Callable[[], None], state_dir: str | Path):
        self.get_config = get_config
        self.apply_overrides = apply_overrides
        self.led_test = led_test
        self.restart = restart
        self.state_dir = Path(state_dir)
        self.overrides = load_overrides(self.state_dir)

    def discard_persisted(self, reason: str) -> None:
        """The persisted overrides cannot be applied (they contradict the profile): run without them."""
        log.error("%s: persisted overrides %s not applied: %s", self.state_dir / OVERRIDES_FILE, self.overrides, reason)
        self.overrides = {}

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
            raise CommandError(f"set-config: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
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

    def _write_tmp(self, data: dict) -> Path:
        tmp = self.state_dir / (OVERRIDES_FILE + ".tmp")
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise StorageError(f"{tmp}: cannot write overrides ({exc.strerror})") from None
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
