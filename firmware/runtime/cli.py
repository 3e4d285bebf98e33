"""The `headset-station` command: run, replay, analyze, check-config, profiles, selftest, calibrate.

Every error a user can cause ends as one line on stderr naming the file or field and the
reason, with the error's exit status (2 bad input, 78 bad config); `--debug` shows the
traceback instead. Subcommands import their machinery only when chosen.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from firmware import __version__
from firmware.config.validate import number_arg
from firmware.errors import ConfigError, InputError, StationError
from firmware.protocol import command_client
from firmware.protocol.envelope import to_json
from firmware.runtime.privileges import refuse_root_on_foreign_state

PROG = "headset-station"
BLOCK_MS_RANGE = (10, 10000)  # replay/analyze --block-ms


def _common_station_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="station config (TOML); default: built-in defaults")
    p.add_argument("--broker", metavar="URL", help="mqtt://host:port or mqtts://host:port (overrides the config)")
    p.add_argument("--station", metavar="ID", help="station id (overrides the config)")
    p.add_argument("--state-dir", metavar="DIR", help="outbox and persisted seq (overrides the config)")


def load_station_settings(args):
    """Settings from --config plus the command-line overrides, validated."""
    from firmware.config.settings import load_settings, settings_from_dict

    settings = load_settings(args.config) if args.config else settings_from_dict({}, "defaults")
    station, mqtt = {}, {}
    if getattr(args, "station", None):
        station["id"] = args.station
    if getattr(args, "state_dir", None):
        station["state_dir"] = args.state_dir
    if getattr(args, "broker", None):
        from firmware.protocol.brokers import parse_broker

        try:
            parse_broker(args.broker)
        except ConfigError:
            raise ConfigError(
                f"--broker: {args.broker!r} is not an mqtt://host[:port] or mqtts://host[:port] URL", "command line"
            ) from None
        mqtt["brokers"] = [args.broker]
    try:
        return settings.replace(station=station, mqtt=mqtt) if (station or mqtt) else settings
    except ConfigError as exc:  # e.g. --station a/b: the same checks as the config file
        raise ConfigError(exc.problems, "command line") from None


class EventPrinter:
    """Prints events as JSON lines (for scripts) or as a readable line each (for people)."""

    def __init__(self, fmt: str = "json", stream=None):
        self.fmt = fmt
        self.stream = stream or sys.stdout

    def __call__(self, event: dict) -> None:
        if self.fmt == "json":
            line = to_json(event)
        else:
            skip = {"type", "t", "ts", "station", "seq", "id", "call"}
            rest = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in event.items() if k not in skip)
            line = f"{event['t']:9.3f}  {event['type']:<18} {rest}"
        self.stream.write(line + "\n")
        self.stream.flush()


def block_ms_arg(text: str | None) -> float | None:
    """--block-ms N: a finite number of milliseconds in BLOCK_MS_RANGE (None: not given)."""
    if text is None:
        return None
    lo, hi = BLOCK_MS_RANGE
    try:
        ms = float(text)
    except ValueError:
        ms = math.nan
    if not (math.isfinite(ms) and lo <= ms <= hi):
        raise InputError(f"--block-ms: {text!r} is not a number of milliseconds from {lo} to {hi}")
    return ms


def cmd_replay(args) -> int:
    from firmware.config.profiles import load_profile
    from firmware.sim.scenario import load_scenario

    # Validate every input before the pipeline is even imported.
    block_ms = block_ms_arg(args.block_ms)
    settings = load_station_settings(args)
    if args.publish:
        refuse_root_on_foreign_state(settings.station.state_dir)
    scenario = load_scenario(args.scenario)
    profile = load_profile(args.profile or scenario.profile or settings.station.profile, settings.profile)
    from firmware.runtime.replay import REPLAY_BLOCK_S, replay

    block_s = REPLAY_BLOCK_S if block_ms is None else block_ms / 1000.0
    lines: list[str] = []

    def flush():
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
            lines.clear()
        sys.stdout.flush()

    def print_event(event):
        lines.append(to_json(event))
        if len(lines) >= 256:  # replay emits faster than line-by-line writes keep up with
            flush()

    reporting = None
    if args.publish:
        if not settings.mqtt.brokers:
            raise ConfigError("--publish needs a broker: give --broker URL or set mqtt.brokers", "command line")
        from firmware.runtime.wiring import open_reporting

        reporting = open_reporting(settings, profile.name)
    try:
        if reporting is None:
            emit = print_event
        else:

            def emit(event):
                reporting.sink(event)  # durably queued before it is printed
                print_event(event)

        try:
            replay(scenario, settings, profile, emit, seq=reporting.seq if reporting else None, block_s=block_s)
        finally:
            flush()
        if reporting is None:
            return 0
        code = reporting.drain(args.drain_timeout)
        if code:
            print(
                f"{PROG}: warning: the broker did not acknowledge every event within {args.drain_timeout:g} s; "
                f"the rest stay in {settings.station.state_dir}/outbox.db and go out on the next run",
                file=sys.stderr,
            )
        return code
    finally:
        if reporting is not None:
            reporting.close()


def cmd_analyze(args) -> int:
    from firmware.config.profiles import load_profile

    block_ms = block_ms_arg(args.block_ms)
    settings = load_station_settings(args)
    profile = load_profile(args.profile or settings.station.profile, settings.profile)
    from firmware.runtime.analyze import analyze_file, format_json, format_text
    from firmware.runtime.replay import REPLAY_BLOCK_S

    block_s = REPLAY_BLOCK_S if block_ms is None else block_ms / 1000.0
    result = analyze_file(args.wav, settings, profile, args.channel, args.tx, block_s, args.channels)
    print(format_json(args.wav, result) if args.json else format_text(args.wav, result))
    return 0


def cmd_run(args) -> int:
    from firmware.runtime.preflight import preflight
    from firmware.runtime.service import run_service

    settings = load_station_settings(args)
    refuse_root_on_foreign_state(settings.station.state_dir)
    if args.scenario and not args.simulate:
        raise InputError("--scenario needs --simulate (a scenario replaces the GPIO pins and the sound card)")
    problems, warnings = preflight(settings, check_audio=not args.scenario)  # what check-config checks
    for warning in warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    if problems:
        raise ConfigError(problems, settings.source)
    scenario = args.scenario
    if args.simulate and not scenario:
        from firmware.sim.demo import demo_scenario

        scenario = str(demo_scenario())
    return run_service(settings, simulate=args.simulate, scenario_path=scenario, printer=EventPrinter(args.format))


def cmd_check_config(args) -> int:
    from firmware.config.profiles import load_profile
    from firmware.config.settings import describe_defaults, load_settings
    from firmware.runtime.preflight import preflight, service_account

    if args.defaults:
        print(describe_defaults())
        return 0
    if not args.path:
        raise InputError("check-config: give a config file, or --defaults to print the defaults")
    try:
        settings = load_settings(args.path)
        profile = load_profile(settings.station.profile, settings.profile)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return exc.exit_code
    # What `run` checks at start besides the config's own values: files, state dir, overrides.
    account = service_account(settings)
    problems, warnings = preflight(settings, account)
    if os.geteuid() == 0 and account is None:
        warnings.append(
            "run as root, but no service user found (no 'headset' user, and the state directory is "
            "not owned by another user): files were checked for root only"
        )
    for warning in warnings:
        print(f"{args.path}: warning: {warning}", file=sys.stderr)
    for problem in problems:
        print(f"{args.path}: {problem}", file=sys.stderr)
    if problems:
        return ConfigError.exit_code
    print(
        f"{args.path}: OK (station {settings.station.id} at {settings.station.site}, profile {profile.name}, "
        f"pause {profile.pause_s:g} s, hold limit {profile.hold_limit_s:g} s)"
    )
    return 0


def cmd_profiles(args) -> int:
    from firmware.config.profiles import load_profile, profile_names

    if args.name:
        print(json.dumps(load_profile(args.name).describe(), ensure_ascii=False, indent=2))
        return 0
    for name in profile_names():
        p = load_profile(name)
        print(f"{name:<16} pause {p.pause_s:g} s  hold {p.hold_limit_s:g} s  {p.direction:<8}  source: {p.source}")
    return 0


def cmd_selftest(args) -> int:
    from firmware.tech.selftest import run_selftest

    return run_selftest(load_station_settings(args), simulate=args.simulate, interactive=not args.yes)


def cmd_calibrate(args) -> int:
    from firmware.tech.calibrate import run_calibrate

    return run_calibrate(load_station_settings(args), args.config, seconds=args.seconds, assume_yes=args.yes)


def cmd_command(args) -> int:
    return command_client.run(args)


FLEET_COMMANDS = ("provision", "monitor", "collect", "report", "loadgen", "board")


def cmd_moved_to_fleet(args) -> int:
    raise InputError(
        f"{args.command} is a central-side fleet tool: run `headset-fleet {args.command} ...` "
        "(the headset-fleet package, tools/fleet; not installed on a station)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Call-centre headset station.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="the station service (live, or --simulate)")
    _common_station_args(p)
    p.add_argument("--simulate", action="store_true", help="mock GPIO pins and file audio; no Pi hardware needed")
    p.add_argument(
        "--scenario", metavar="FILE", help="with --simulate: play this scenario in real time (default: the demo call)"
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help="how events are printed (default text)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("replay", help="run a scenario on a virtual clock; events as JSON lines")
    p.add_argument("scenario", metavar="SCENARIO.toml")
    p.add_argument("--profile", metavar="NAME", help="profile name or file (overrides the scenario's)")
    _common_station_args(p)
    p.add_argument("--publish", action="store_true", help="also send the events through the outbox to the broker")
    p.add_argument(
        "--drain-timeout",
        type=number_arg(float, lo=0.0, hi=3600.0),
        default=30.0,
        metavar="S",
        help="with --publish: wait this long for the broker (0-3600)",
    )
    p.add_argument(
        "--block-ms",
        metavar="N",
        help="feed the pipeline in N ms blocks, as the live service does (10-10000; default 960)",
    )
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("analyze", help="what the analyser decides for a WAV: speech segments, line, tones, echo")
    p.add_argument("wav", metavar="WAV")
    p.add_argument("--channel", choices=("rx", "tx"), default="rx", help="the channel to analyse (default rx)")
    p.add_argument(
        "--channels",
        metavar="LIST",
        help="a WAV of several channels: what each is, in order, e.g. rx,tx or tx,rx (- leaves one out)",
    )
    p.add_argument("--tx", metavar="WAV", help="with --channel rx: the agent's channel, for the echo coupling")
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    p.add_argument("--config", metavar="PATH", help="station config (TOML); default: built-in defaults")
    p.add_argument("--profile", metavar="NAME", help="profile name or file (the line thresholds)")
    p.add_argument("--block-ms", metavar="N", help="feed the analyser in N ms blocks (10-10000; default 960)")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("check-config", help="validate a station config; list every problem")
    p.add_argument("path", nargs="?")
    p.add_argument("--defaults", action="store_true", help="print the default config, commented")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("profiles", help="list the shipped profiles, or show one")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("selftest", help="technician self-test: LEDs, inputs, audio, broker")
    _common_station_args(p)
    p.add_argument("--simulate", action="store_true")
    p.add_argument("--yes", action="store_true", help="non-interactive")
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser("calibrate", help="measure noise and a test phrase; propose gains and thresholds")
    _common_station_args(p)
    p.add_argument(
        "--seconds", type=number_arg(float, lo=0.5, hi=60.0), default=3.0, help="length of each recording (0.5-60 s)"
    )
    p.add_argument("--yes", action="store_true", help="write the proposal without asking")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("command", help="send a command to a station over MQTT and print its reply")
    command_client.add_arguments(p)
    p.set_defaults(func=cmd_command)

    for name in FLEET_COMMANDS:
        p = sub.add_parser(name, add_help=False, help=argparse.SUPPRESS)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=cmd_moved_to_fleet)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)  # a moved fleet command may have any options
    if unknown and args.func is not cmd_moved_to_fleet:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    debug = args.debug or os.environ.get("HEADSET_STATION_DEBUG") == "1"
    try:
        return int(args.func(args) or 0)
    except StationError as exc:
        if debug:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the last line of defence: never a bare traceback
        if debug:
            raise
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
