"""A small real file system for the disk-full tests: a 2 MiB tmpfs with a ballast file.

Mounting needs root (CAP_SYS_ADMIN), as on the test machine; elsewhere the tests that use
it are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess

import pytest


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (needs root, as on the test machine) and fill()/free() for its ballast."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip()})")
    ballast = mnt / "ballast"

    class Disk:
        path = mnt

        def fill(self):
            fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass  # ENOSPC: full
            finally:
                os.close(fd)

        def free(self):
            ballast.unlink()

    yield Disk()
    subprocess.run(["umount", "-l", str(mnt)], check=False)
