"""loadgen's `--mode reporter`: each simulated station sends through the station's own
`Reporter` and SQLite `Outbox`, to measure the station's reporting code under fleet load.

The one fleet module that imports the station's internals (`firmware.reporting`): it runs
the station's code on purpose. Three threads and an outbox per station: tens of stations.
"""

from __future__ import annotations

import os
import random
import tempfile
import time

from firmware.config.settings import settings_from_dict
from firmware.protocol.envelope import EventFactory
from firmware.reporting.outbox import Outbox
from firmware.reporting.reporter import Reporter
from headset_fleet.simcalls import LoadResult, call_script


def reporter_worker(url: str, names: list[tuple[str, str, str]], rate_per_s: float, duration_s: float, out) -> None:
    """Each station through firmware.publisher.Reporter + firmware.outbox.Outbox (the station's code)."""

    result = LoadResult(stations=len(names))
    tmp = tempfile.TemporaryDirectory(prefix="hs-loadgen-")
    sims = []
    try:
        for k, (site, sid, password) in enumerate(names):
            state_dir = f"{tmp.name}/{sid}"
            mqtt_table: dict[str, object] = {"brokers": [url]}
            if password:
                os.makedirs(state_dir, exist_ok=True)
                pw_file = f"{state_dir}/mqtt-password"
                with os.fdopen(os.open(pw_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
                    fh.write(password + "\n")
                mqtt_table.update(username=sid, password_file=pw_file)
            settings = settings_from_dict(
                {"station": {"id": sid, "site": site, "state_dir": state_dir}, "mqtt": mqtt_table}, "loadgen"
            )
            outbox = Outbox.in_state_dir(state_dir)
            reporter = Reporter(settings, outbox, profile_name=settings.station.profile)
            reporter.start()
            sims.append((reporter, outbox, EventFactory(sid, time.time(), outbox), call_script(random.Random(k))))
        deadline = time.monotonic() + 30
        while not all(r.connected for r, *_ in sims) and time.monotonic() < deadline:
            time.sleep(0.05)
        result.connected = sum(r.connected for r, *_ in sims)
        start, i = time.monotonic(), 0
        while (now := time.monotonic()) < start + duration_s:
            for _ in range(max(int((now - start) * rate_per_s) - result.published, 0)):
                reporter, _outbox, factory, script = sims[i % len(sims)]
                call, kind, fields = next(script)
                reporter.sink(factory.make(kind, time.time() - factory.epoch_s, call, **fields))
                i += 1
                result.published += 1
            time.sleep(0.005)
        result.elapsed_s = time.monotonic() - start
        for reporter, *_ in sims:
            reporter.wait_drained(30)
        result.acked = result.published - sum(o.event_depth for _, o, *_ in sims)
    except Exception as exc:  # reported in the result; the parent prints one line
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for reporter, outbox, *_ in sims:
            reporter.stop()
            outbox.close()
        tmp.cleanup()
        out.put(result)
