"""Keep root from leaving root-owned files in the service user's state directory.

On an installed station /var/lib/headset-station belongs to the `headset` service user. A
technician's `sudo headset-station run ...` would create the outbox and its lock there as
root, and the service (running as `headset`) could then no longer open them. The commands
that write the state directory (`run`, `replay --publish`) call `refuse_root_on_foreign_state`
before anything is created: run as uid 0 on a state directory that belongs to another user,
they stop with one line naming the command to use instead (`sudo -u headset headset-station
...`, exit 2). Root on its own (or a new) state directory, and every other user, go ahead.
"""

from __future__ import annotations

import os
import pwd
import shlex
import sys

from firmware.errors import WrongUserError
from firmware.reporting.statefile import foreign_owner


def refuse_root_on_foreign_state(
    state_dir: str | os.PathLike, argv: list[str] | None = None, prog: str = "headset-station"
) -> None:
    """WrongUserError when this process is root and `state_dir` belongs to another user."""
    uid = foreign_owner(state_dir)
    if uid is None:
        return
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"#{uid}"  # sudo's syntax for a uid without a name
    args = shlex.join(sys.argv[1:] if argv is None else argv)
    raise WrongUserError(
        f"{state_dir} belongs to {user}: files root made there would lock the service out; "
        f"run as the service user: sudo -u {user} {prog} {args}"
    )
