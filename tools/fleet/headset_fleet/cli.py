"""The `headset-fleet` command: provision, monitor, collect, report, loadgen.

Heavy imports (matplotlib, rich, psycopg, cryptography) happen inside each command, so one
command does not pay for another's libraries. Every user error is a FleetError (or a
StationError from the shared station modules): one line on stderr and its exit code, no
traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path

from firmware.errors import StationError
from headset_fleet.errors import FleetError, FleetInputError

DEFAULT_DB = "sqlite:///var/fleet/events.db"


def cmd_provision(args) -> int:
    from headset_fleet.provision import DEFAULT_BROKER, provision
    w = provision(Path(args.inventory), Path(args.out), ca_dir=Path(args.ca_dir) if args.ca_dir else None,
                  boot_partition=Path(args.boot_partition) if args.boot_partition else None,
                  station=args.station, default_broker=args.broker or DEFAULT_BROKER)
    for line in w.changed + w.notes:
        print(line)
    print(f"provision: {len(w.changed)} file(s) changed, {w.unchanged} unchanged")
    return 0


def cmd_monitor(args) -> int:
    from headset_fleet.monitor import run_json, run_live
    if args.json:
        return run_json(args.broker, wait_s=args.wait_s, sort_key=args.sort)
    return run_live(args.broker, sort_key=args.sort)


def _wait_for_signal(stop: threading.Event, duration_s: float | None, every_s: float = 0.0, tick=None) -> None:
    """Wait for SIGINT/SIGTERM or `duration_s`, calling `tick()` every `every_s` meanwhile."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while True:
        wait_s = every_s if tick and every_s else None
        if deadline is not None:
            left_s = max(deadline - time.monotonic(), 0.0)
            wait_s = left_s if wait_s is None else min(wait_s, left_s)
        if stop.wait(wait_s) or (deadline is not None and time.monotonic() >= deadline):
            return
        tick()


def cmd_collect(args) -> int:
    from headset_fleet.collector import Collector, Progress
    from headset_fleet.connect import parse_broker_url
    from headset_fleet.store import open_store
    if not (math.isfinite(args.progress_s) and (args.progress_s == 0 or 1 <= args.progress_s <= 3600)):
        raise FleetInputError(f"--progress-s: {args.progress_s!r} is not 0 (off) or 1-3600 seconds")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    store = open_store(args.db)
    collector = Collector(parse_broker_url(args.broker), store, group=args.group, client_id=args.client_id,
                          ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file)
    if args.retire:
        collector.retire()
        store.close()
        print(f"collect: retired {collector.client_id}: stored {collector.stats.stored} queued event(s), "
              "session ended")
        return 0
    collector.start()
    stop = threading.Event()
    progress = Progress(collector.stats)
    _wait_for_signal(stop, args.duration_s, args.progress_s, lambda: print(progress.line(), file=sys.stderr, flush=True))
    collector.stop()
    store.close()
    s = collector.stats
    print(f"collect: received {s.received}, stored {s.stored}, duplicates {s.duplicates}, "
          f"rejected {s.rejected}, connects {s.connects}")
    return 0


def cmd_report(args) -> int:
    from datetime import date

    from headset_fleet.report import run_report
    try:
        day = date.fromisoformat(args.day)
    except ValueError:
        raise FleetInputError(f"--day: {args.day!r} is not YYYY-MM-DD") from None
    return run_report(args.db, day, csv_path=args.csv, png_dir=args.png, html_path=args.html, tz=args.tz,
                      inventory=args.inventory, hold_limit_s=args.hold_limit_s)


def cmd_loadgen(args) -> int:
    from headset_fleet.loadgen import run_loadgen
    result = run_loadgen(args.broker, stations=args.stations, rate_per_s=args.rate, duration_s=args.duration_s,
                         per_process=args.per_process, sites=args.sites, prefix=args.prefix, mode=args.mode,
                         provisioned=args.provisioned or "")
    print(result.summary())
    return 0 if result.unacked == 0 and result.connected == result.stations else 1


def add_subcommands(subparsers) -> None:
    """Add provision, monitor, collect, report and loadgen to an argparse subparsers object."""
    p = subparsers.add_parser("provision", help="inventory CSV -> station configs, broker passwords/ACL, certs")
    p.add_argument("inventory", metavar="INVENTORY.csv")
    p.add_argument("--out", required=True, metavar="DIR", help="fleet output directory (keeps generated secrets)")
    p.add_argument("--boot-partition", metavar="MOUNT", help="also write one station's files to MOUNT/headset-station/")
    p.add_argument("--station", metavar="ID", help="the station for --boot-partition")
    p.add_argument("--ca-dir", metavar="DIR", help="fleet CA (created if absent): issue TLS client certificates")
    p.add_argument("--broker", metavar="URL", help="broker for rows without a broker column")
    p.set_defaults(func=cmd_provision)

    p = subparsers.add_parser("monitor", help="live view of every station from the broker")
    p.add_argument("--broker", required=True, metavar="URL")
    p.add_argument("--json", action="store_true", help="collect retained status/state, print JSON once, exit")
    p.add_argument("--sort", default="station", metavar="KEY",
                   help="station, site, status, hold, faults, outbox or last_seen")
    p.add_argument("--wait-s", type=float, default=1.0, help="--json: how long to collect retained messages")
    p.set_defaults(func=cmd_monitor)

    p = subparsers.add_parser("collect", help="store station events from the broker (shared subscription)")
    p.add_argument("--broker", required=True, metavar="URL")
    p.add_argument("--db", default=DEFAULT_DB, metavar="URL", help="sqlite:///PATH (default) or postgresql://...")
    p.add_argument("--group", default="collectors", metavar="NAME", help="shared-subscription group")
    p.add_argument("--client-id", default="", metavar="ID",
                   help="fixed per collector instance (default hs-collector-GROUP-HOSTNAME); keeps its broker session")
    p.add_argument("--ca-file", default="", metavar="FILE", help="CA bundle for mqtts://")
    p.add_argument("--cert-file", default="", metavar="FILE", help="client certificate for mqtts://")
    p.add_argument("--key-file", default="", metavar="FILE", help="client key for mqtts://")
    p.add_argument("--retire", action="store_true",
                   help="retire this collector for good: store what the broker queued for it, end its session, exit")
    p.add_argument("--duration-s", type=float, default=None, help="stop after this long (default: until signalled)")
    p.add_argument("--progress-s", type=float, default=10.0, metavar="S",
                   help="print received/stored/rejected to stderr every S seconds (0 = off; default 10)")
    p.set_defaults(func=cmd_collect)

    p = subparsers.add_parser("report", help="a day's figures per site, desk and agent, in local time")
    p.add_argument("--db", default=DEFAULT_DB, metavar="URL")
    p.add_argument("--day", required=True, metavar="YYYY-MM-DD", help="local calendar day of each site")
    p.add_argument("--tz", metavar="ZONE",
                   help="IANA time zone for every site (default: each site's tz from --inventory, else this machine's)")
    p.add_argument("--inventory", metavar="FILE", help="the fleet inventory CSV: site time zones (tz column), sites to list")
    p.add_argument("--csv", metavar="FILE")
    p.add_argument("--png", metavar="DIR", help="one chart per site: DIR/<site>.png")
    p.add_argument("--html", metavar="FILE", help="the report as one HTML page with the charts embedded")
    p.add_argument("--hold-limit-s", type=float, default=60.0)
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser("loadgen", help="simulate many stations publishing event streams")
    p.add_argument("--broker", required=True, metavar="URL")
    p.add_argument("--stations", type=int, default=100)
    p.add_argument("--rate", type=float, default=100.0, help="events per second, whole fleet")
    p.add_argument("--duration-s", type=float, default=10.0)
    p.add_argument("--per-process", type=int, default=250, help="stations per worker process")
    p.add_argument("--sites", type=int, default=4)
    p.add_argument("--prefix", default="sim", help="station id prefix")
    p.add_argument("--provisioned", metavar="DIR",
                   help="use the stations (ids, sites, passwords) of a `provision --out` directory")
    p.add_argument("--mode", choices=("direct", "reporter"), default="direct",
                   help="direct: many paho clients per process on one loop (scales to thousands); "
                        "reporter: each station through the station's own Reporter and outbox")
    p.set_defaults(func=cmd_loadgen)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="headset-fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FleetError, StationError) as exc:
        if args.debug:
            raise
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: never a bare traceback
        if args.debug:
            raise
        print(f"{parser.prog}: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
