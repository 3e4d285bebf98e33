"""A minimal station process for the crash tests: Outbox + Reporter + EventFactory.

    python tests/mqtt_station_child.py BROKER_URL STATE_DIR COUNT RATE_PER_S DRAIN_PER_S

Emits COUNT `cue` events at RATE_PER_S, printing each `seq` once `sink()` returned (so the
event is committed to the outbox), then waits for the outbox to drain and stops cleanly,
printing `drained`. The parent kills it with SIGKILL somewhere in between.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures_mqtt import station_settings  # noqa: E402

from firmware.protocol.envelope import EventFactory  # noqa: E402
from firmware.reporting.outbox import Outbox  # noqa: E402
from firmware.reporting.reporter import Reporter  # noqa: E402


def main():
    url, state_dir, count, rate, drain = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        float(sys.argv[4]),
        int(sys.argv[5]),
    )
    outbox = Outbox.in_state_dir(state_dir)
    reporter = Reporter(
        station_settings(url, state_dir=state_dir, drain_per_s=drain), outbox, profile_name="hotline-5s"
    )
    reporter.start()
    factory = EventFactory("desk-1", time.time(), seq=outbox)
    for i in range(count):
        event = factory.make("cue", i / rate, None, cue="idle", leds={})
        reporter.sink(event)
        print(event["seq"], flush=True)
        time.sleep(1.0 / rate)
    if reporter.wait_drained(60):
        print("drained", flush=True)
    reporter.stop()
    outbox.close()


if __name__ == "__main__":
    main()
