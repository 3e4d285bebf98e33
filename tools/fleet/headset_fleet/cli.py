"""The `headset-fleet` command: provision, monitor, board, collect, report, loadgen, command.

Tools that connect take the broker user in the URL (`mqtts://_collector@broker`) and its
password from `--password-file FILE` or HS_MQTT_PASSWORD (firmware.protocol.login), so no
password need appear in `ps` or shell history.

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
from firmware.protocol import command_client
from firmware.protocol.login import add_login_arguments, login_from_args
from headset_fleet.errors import FleetError, FleetInputError

DEFAULT_DB = "sqlite:///var/fleet/events.db"
# Modules a subcommand imports when it runs -> their distribution on PyPI.
DISTRIBUTIONS = {
    "paho": "paho-mqtt",
    "rich": "rich",
    "matplotlib": "matplotlib",
    "cryptography": "cryptography",
    "psycopg": "psycopg",
    "starlette": "starlette",
    "uvicorn": "uvicorn",
}


def missing_dependency(command: str, exc: ImportError) -> str:
    """One line naming what to install when `command` met a missing module: the headset-fleet
    extra that declares it if there is one, else the requirement itself."""
    import re
    from importlib import metadata

    module = (exc.name or "").split(".")[0]
    dist = DISTRIBUTIONS.get(module, module)
    try:
        requires = metadata.requires("headset-fleet") or []
    except metadata.PackageNotFoundError:
        requires = []
    for req in requires:
        name = re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0]
        if name.lower().replace("_", "-") == dist.lower():
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
            spec = req.split(";")[0].strip()
            how = f"pip install 'headset-fleet[{extra.group(1)}]'" if extra else f"pip install '{spec}'"
            return f"{command} needs {module}, which is not installed: {how}"
    return f"{command} needs {module}, which is not installed: pip install '{dist}'"


def cmd_provision(args) -> int:
    from headset_fleet.provision import provision

    w = provision(
        Path(args.inventory),
        Path(args.out),
        ca_dir=Path(args.ca_dir) if args.ca_dir else None,
        boot_partition=Path(args.boot_partition) if args.boot_partition else None,
        station=args.station,
        default_broker=args.broker,
        collectors=args.collector or (),
        monitors=args.monitor or (),
        operators=args.operator or (),
    )
    for line in w.changed + w.notes:
        print(line)
    print(f"provision: {len(w.changed)} file(s) changed, {w.unchanged} unchanged")
    return 0


def _seconds(option: str, value, hi: float = 7 * 86400) -> float:
    """A finite number of seconds in (0, hi]; FleetInputError (exit 2) otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and 0 < number <= hi):
        raise FleetInputError(f"{option}: {value!r} must be a number of seconds above 0 and at most {hi:g}")
    return number


def cmd_monitor(args) -> int:
    from headset_fleet.monitor import run_json, run_live

    login = login_from_args(args)
    if args.json:
        return run_json(login, wait_s=_seconds("--wait-s", args.wait_s, 3600), sort_key=args.sort)
    return run_live(login, sort_key=args.sort, lang=args.lang)


def cmd_board(args) -> int:
    from headset_fleet.board import run_board
    from headset_fleet.report import load_report, render_report_html

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    report_html = None
    if args.db:  # the HTML daily report of the store, served at /report

        def report_html(day, tz):
            return render_report_html(load_report(args.db, day, tz=tz))

    return run_board(
        login_from_args(args),
        login_file=args.login_file,
        bind=args.bind,
        port=args.port,
        rules_file=args.alerts,
        lang=args.lang,
        report_html=report_html,
    )


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
    from headset_fleet.store import open_store

    if not (math.isfinite(args.progress_s) and (args.progress_s == 0 or 1 <= args.progress_s <= 3600)):
        raise FleetInputError(f"--progress-s: {args.progress_s!r} is not 0 (off) or 1-3600 seconds")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    login = login_from_args(args)
    duration_s = None if args.duration_s is None else _seconds("--duration-s", args.duration_s, 10 * 365 * 86400)
    store = open_store(args.db)
    collector = Collector(login, store, group=args.group, client_id=args.client_id)
    if args.retire:
        collector.retire()
        store.close()
        print(f"collect: retired {collector.client_id}: stored {collector.stats.stored} queued event(s), session ended")
        return 0
    collector.start()
    stop = threading.Event()
    progress = Progress(collector.stats)
    _wait_for_signal(stop, duration_s, args.progress_s, lambda: print(progress.line(), file=sys.stderr, flush=True))
    collector.stop()
    store.close()
    s = collector.stats
    print(
        f"collect: received {s.received}, stored {s.stored}, duplicates {s.duplicates}, "
        f"rejected {s.rejected} (identity mismatches {s.mismatched}), connects {s.connects}"
    )
    return 0


def cmd_report(args) -> int:
    from datetime import date

    from headset_fleet.report import run_report

    try:
        day = date.fromisoformat(args.day)
    except ValueError:
        raise FleetInputError(f"--day: {args.day!r} is not YYYY-MM-DD") from None
    return run_report(
        args.db,
        day,
        csv_path=args.csv,
        png_dir=args.png,
        html_path=args.html,
        tz=args.tz,
        inventory=args.inventory,
        hold_limit_s=args.hold_limit_s,
    )


def cmd_loadgen(args) -> int:
    from headset_fleet.loadgen import run_loadgen

    result = run_loadgen(
        login_from_args(args),
        stations=args.stations,
        rate_per_s=args.rate,
        duration_s=args.duration_s,
        per_process=args.per_process,
        sites=args.sites,
        prefix=args.prefix,
        mode=args.mode,
        provisioned=args.provisioned or "",
    )
    print(result.summary())
    return 0 if result.unacked == 0 and result.connected == result.stations else 1


def cmd_command(args) -> int:
    return command_client.run(args)


def add_subcommands(subparsers) -> None:
    """Add provision, monitor, board, collect, report, loadgen and command to an argparse subparsers object."""
    p = subparsers.add_parser("provision", help="inventory CSV -> station configs, broker passwords/ACL, certs")
    p.add_argument("inventory", metavar="INVENTORY.csv")
    p.add_argument("--out", required=True, metavar="DIR", help="fleet output directory (keeps generated secrets)")
    p.add_argument("--boot-partition", metavar="MOUNT", help="also write one station's files to MOUNT/headset-station/")
    p.add_argument("--station", metavar="ID", help="the station for --boot-partition")
    p.add_argument("--ca-dir", metavar="DIR", help="fleet CA (created if absent): issue TLS client certificates")
    p.add_argument(
        "--broker", metavar="URL", help="broker for rows without a broker column (required unless every row has one)"
    )
    for kind in ("collector", "monitor", "operator"):
        p.add_argument(
            f"--{kind}",
            action="append",
            metavar="NAME",
            help=f"a broker user _{kind}-NAME per {kind} instance (repeatable; default one user _{kind})",
        )
    p.set_defaults(func=cmd_provision)

    p = subparsers.add_parser("monitor", help="live view of every station from the broker")
    p.add_argument("--broker", required=True, metavar="URL")
    p.add_argument("--json", action="store_true", help="collect retained status/state, print JSON once, exit")
    p.add_argument(
        "--sort",
        default="station",
        metavar="KEY",
        help="station, desk, site, status, hold, call, faults, outbox or last_seen",
    )
    p.add_argument("--wait-s", default=1.0, metavar="S", help="--json: how long to collect retained messages")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="language of the cue words")
    add_login_arguments(p)
    p.set_defaults(func=cmd_monitor)

    p = subparsers.add_parser("board", help="the supervisors' floor board: a live web page with alerts")
    p.add_argument("--broker", required=True, metavar="URL")
    add_login_arguments(p)
    p.add_argument(
        "--login-file",
        required=True,
        metavar="FILE",
        help="the board's password, first line (mode 0600, at least 8 characters)",
    )
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="listen address (default: this machine only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--alerts", metavar="FILE", help="alert rules (TOML; see config/alerts.example.toml)")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="default language of the cue words")
    p.add_argument("--db", default="", metavar="URL", help="event store: serve its daily report at /report")
    p.set_defaults(func=cmd_board)

    p = subparsers.add_parser("collect", help="store station events from the broker (shared subscription)")
    p.add_argument("--broker", required=True, metavar="URL")
    p.add_argument("--db", default=DEFAULT_DB, metavar="URL", help="sqlite:///PATH (default) or postgresql://...")
    p.add_argument("--group", default="collectors", metavar="NAME", help="shared-subscription group")
    p.add_argument(
        "--client-id",
        default="",
        metavar="ID",
        help="fixed per collector instance (default: the broker user, else hs-collector-GROUP-HOSTNAME); "
        "keeps its broker session",
    )
    add_login_arguments(p)
    p.add_argument(
        "--retire",
        action="store_true",
        help="retire this collector for good: store what the broker queued for it, end its session, exit",
    )
    p.add_argument("--duration-s", default=None, metavar="S", help="stop after this long (default: until signalled)")
    p.add_argument(
        "--progress-s",
        type=float,
        default=10.0,
        metavar="S",
        help="print received/stored/rejected to stderr every S seconds (0 = off; default 10)",
    )
    p.set_defaults(func=cmd_collect)

    p = subparsers.add_parser("report", help="a day's figures per site, desk and agent, in local time")
    p.add_argument("--db", default=DEFAULT_DB, metavar="URL")
    p.add_argument("--day", required=True, metavar="YYYY-MM-DD", help="local calendar day of each site")
    p.add_argument(
        "--tz",
        metavar="ZONE",
        help="IANA time zone for every site (default: each site's tz from --inventory, else this machine's)",
    )
    p.add_argument(
        "--inventory", metavar="FILE", help="the fleet inventory CSV: site time zones (tz column), sites to list"
    )
    p.add_argument("--csv", metavar="FILE")
    p.add_argument("--png", metavar="DIR", help="one chart per site: DIR/<site>.png")
    p.add_argument("--html", metavar="FILE", help="the report as one HTML page with the charts embedded")
    p.add_argument("--hold-limit-s", type=float, default=60.0)
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser("loadgen", help="simulate many stations publishing event streams")
    p.add_argument("--broker", required=True, metavar="URL")
    p.add_argument("--stations", default=100, metavar="N")
    p.add_argument("--rate", default=100.0, metavar="PER_S", help="events per second, whole fleet")
    p.add_argument("--duration-s", default=10.0, metavar="S")
    p.add_argument("--per-process", default=250, metavar="N", help="stations per worker process")
    p.add_argument("--sites", default=4, metavar="N")
    p.add_argument("--prefix", default="sim", help="station id prefix")
    p.add_argument(
        "--provisioned", metavar="DIR", help="use the stations (ids, sites, passwords) of a `provision --out` directory"
    )
    p.add_argument(
        "--mode",
        choices=("direct", "reporter"),
        default="direct",
        help="direct: many paho clients per process on one loop (scales to thousands); "
        "reporter: each station through the station's own Reporter and outbox",
    )
    add_login_arguments(p)
    p.set_defaults(func=cmd_loadgen)

    p = subparsers.add_parser("command", help="send a command to a station and print its reply")
    command_client.add_arguments(p)
    p.set_defaults(func=cmd_command)


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
    except ImportError as exc:  # a subcommand's dependency is not installed (else: a bug, below)
        if args.debug or (exc.name or "").split(".")[0] not in DISTRIBUTIONS:
            return _internal_error(parser, args, exc)
        print(f"{parser.prog}: error: {missing_dependency(args.command, exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # the last line of defence: never a bare traceback
        return _internal_error(parser, args, exc)


def _internal_error(parser, args, exc: Exception) -> int:
    if args.debug:
        raise exc
    print(
        f"{parser.prog}: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
        file=sys.stderr,
    )
    return 70


if __name__ == "__main__":
    sys.exit(main())
