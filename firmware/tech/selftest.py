"""`headset-station selftest`: the technician's check of one desk, part by part.

LEDs (a chase the technician confirms), the hook switch and the mute key (lift, press,
each within a time limit), 3 s of audio from each channel (levels and VAD: a channel passes
only if it carries speech and no loud mains hum, see `speech_problem`; a DC offset is
reported, the analyser takes it out; the tx->rx coupling), and every
configured broker (a real MQTT connect with the station's credentials). Each part prints
one `PASS`/`FAIL`/`SKIP` line; the exit status is 1 if any part failed.

Run it with the service stopped: the sound card and the GPIO lines are not shared.
`--simulate` uses mock pins (the test drives them itself) and the WAV/silent audio source,
judged exactly like a sound card: silence fails; non-interactive mode asks nothing and
skips what needs a person.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from firmware.analysis.measure import MAX_HUM_DBFS, echo_coupling, measure
from firmware.config.settings import Settings
from firmware.errors import StationError
from firmware.protocol.brokers import configure_client, describe_failure, parse_broker
from firmware.runtime.sources import open_source
from firmware.runtime.wiring import simulated_settings
from hal.audio import record
from hal.gpio import GpioInputs, led_chase, make_pin_factory

INPUT_WAIT_S = 15.0
AUDIO_S = 3.0
BROKER_TIMEOUT_S = 5.0
# While the technician speaks (tx) and a test call plays (rx), a working channel carries speech.
# A disconnected tap reads only its noise floor (typically -60 to -70 dBFS), on which the VAD
# flags ~3 % of the frames (its start-up); 3 s of speech give 55-90 %. -45 dBFS is 19 dB under
# the -26 dBFS nominal level `calibrate` aims for (its gains reach it) and 5 dB under the
# profile's "too low" threshold; 20 % is about 0.6 s of speech in the 3 s recording.
MIN_SPEECH_DBFS = -45.0
MIN_SPEECH_SHARE = 0.20
MAX_COUPLING_DB = -3.0  # tx louder than this on rx: the customer channel is the microphone


class _Result:
    def __init__(self, out):
        self.out, self.failed = out, []

    def __call__(self, status: str, part: str, detail: str) -> None:
        self.out(f"{status:<4} {part}: {detail}")
        if status == "FAIL":
            self.failed.append(part)


def _ask(question: str) -> bool:
    try:
        return input(f"{question} [y/n] ").strip().lower().startswith("y")
    except EOFError:
        return False


def check_leds(settings: Settings, factory, report, interactive: bool, simulate: bool) -> None:
    if settings.leds.kind == "none":
        report("SKIP", "leds", "leds.kind = none")
        return
    try:
        names, pins = led_chase(settings.leds, factory)
    except StationError as exc:
        report("FAIL", "leds", str(exc))
        return
    if simulate:
        ok = all(len(p.states) >= 3 for p in pins)  # each mock pin went on and off again
        report("PASS" if ok else "FAIL", "leds", f"chase over {', '.join(names)} on mock pins")
    elif interactive:
        seen = _ask(f"Did {', '.join(names)} light one after the other?")
        report("PASS" if seen else "FAIL", "leds", "chase seen" if seen else f"chase over {', '.join(names)} not seen")
    else:
        report("SKIP", "leds", f"chase over {', '.join(names)} shown; nobody to confirm (non-interactive)")


def check_inputs(settings: Settings, factory, report, interactive: bool, simulate: bool, out) -> None:
    edges: queue.Queue = queue.Queue()
    try:
        inputs = GpioInputs(settings.gpio, lambda t, name, value: edges.put((name, value)), pin_factory=factory)
    except StationError as exc:
        report("FAIL", "hook", str(exc))
        report("FAIL", "mute", "not checked: GPIO set-up failed")
        return
    with inputs:
        start = inputs.initial()
        if start["hook_off"]:
            report(
                "FAIL",
                "hook",
                "reads 'handset lifted' at rest: put the handset down, or check "
                "gpio.hook_off_when_pressed / gpio.hook_pull_up",
            )
            return
        steps = (("hook", "off", "Lift the handset"), ("mute", True, "Press the mute key"))
        for name, want, prompt in steps:
            if not (interactive or simulate):
                report("SKIP", name, f"at rest: {start}; needs a technician (non-interactive)")
                continue
            if simulate:
                threading.Timer(0.1, inputs.drive, (name, want)).start()
            else:
                out(f"... {prompt} (within {INPUT_WAIT_S:g} s)")
            got = _wait_edge(edges, name, want, INPUT_WAIT_S)
            pin = getattr(settings.gpio, f"{name}_pin")
            report(
                "PASS" if got else "FAIL",
                name,
                f"GPIO{pin} changed to {want!r}" if got else f"no {name} edge on GPIO{pin} within {INPUT_WAIT_S:g} s",
            )
        if interactive and not simulate:
            out("... Put the handset back")


def _wait_edge(edges: queue.Queue, name: str, want, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            if edges.get(timeout=left) == (name, want):
                return True
        except queue.Empty:
            break
    return False


def check_audio(settings: Settings, report, interactive: bool, simulate: bool, out) -> None:

    a = settings.audio
    if interactive and not simulate:
        out(f"... Recording {AUDIO_S:g} s: keep speaking into the headset, a test call playing on the line")
    try:
        tx, rx = record(open_source(a), AUDIO_S)
    except StationError as exc:
        report("FAIL", "audio", str(exc))
        return
    for ch, samples in (("tx", tx), ("rx", rx)):
        if samples is None:
            report("SKIP", f"audio {ch}", "mono capture (audio.channels = 1)")
            continue
        r = measure(samples, a.rate_hz, settings.analysis.vad_aggressiveness)
        problem = speech_problem(r)  # the same test for a sound card and a simulated source
        detail = r.line() if r.digital_silence or not problem else f"{r.line()}: {problem}"
        report("FAIL" if problem else "PASS", f"audio {ch}", detail)
    if tx is not None and rx is not None and settings.analysis.echo == "auto":
        c = echo_coupling(tx, rx, a.rate_hz, settings.analysis, a.frame_ms, a.tx_gain_db, a.rx_gain_db)
        report(
            "PASS" if c is None or c[0] < MAX_COUPLING_DB else "FAIL",
            "echo",
            "no echo of tx on rx"
            if c is None
            else f"tx on rx at {c[0]:+.1f} dB, {c[1]} ms"
            + ("" if c[0] < MAX_COUPLING_DB else ": is the receive tap wired to the microphone?"),
        )


def speech_problem(r) -> str | None:
    """Why a recording does not show a working channel (None if it does)."""
    if r.digital_silence:
        return "digital silence"
    if r.hum is not None and r.hum[1] >= MAX_HUM_DBFS:
        return (
            f"hum louder than {MAX_HUM_DBFS:g} dBFS (a quiet line reads noisy, quiet speech is lost): "
            "a ground loop? check the tap's ground and screen"
        )
    if r.speech_share < MIN_SPEECH_SHARE or r.speech_dbfs < MIN_SPEECH_DBFS:
        return (
            f"only a noise floor: needs speech at {MIN_SPEECH_DBFS:g} dBFS or louder in at least "
            f"{MIN_SPEECH_SHARE:.0%} of the recording (speak / play a test call; check the cable)"
        )
    return None


def check_brokers(settings: Settings, report) -> None:
    if not settings.mqtt.brokers:
        report("SKIP", "broker", "no broker configured (mqtt.brokers)")
        return
    for url in settings.mqtt.brokers:
        ok, detail = probe_broker(settings, url)
        report("PASS" if ok else "FAIL", f"broker {url}", detail)


def probe_broker(settings: Settings, url: str) -> tuple[bool, str]:
    """One MQTT connect with the station's TLS and credentials; (ok, one-line detail)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    st = settings.station
    try:
        tls, host, port = parse_broker(url)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hs-selftest-{st.site}-{st.id}")
        configure_client(client, settings.mqtt, st.id, tls, check_files=True)
    except StationError as exc:
        return False, str(exc)
    done = threading.Event()
    result: dict[str, Any] = {}

    def on_connect(_c, _u, _flags, rc, _props) -> None:
        result.setdefault("rc", rc)
        done.set()

    client.on_connect = on_connect
    try:
        t0 = time.monotonic()
        client.connect(host, port, keepalive=10)
        client.loop_start()
        if not done.wait(BROKER_TIMEOUT_S):
            return False, f"no CONNACK within {BROKER_TIMEOUT_S:g} s"
        rc = result["rc"]
        if rc.is_failure:
            return False, f"refused: {rc}"
        return True, f"connected in {1000 * (time.monotonic() - t0):.0f} ms"
    except Exception as exc:
        return False, describe_failure(exc)
    finally:
        client.loop_stop()
        client.disconnect()


def run_selftest(settings: Settings, *, simulate: bool = False, interactive: bool = True, out=print) -> int:
    if simulate:
        settings = simulated_settings(settings)
    report = _Result(out)
    try:
        factory = make_pin_factory(settings.gpio.pin_factory, simulate=simulate)
    except StationError as exc:
        report("FAIL", "gpio", str(exc))
        factory = None
    if factory is not None or not report.failed:
        check_leds(settings, factory, report, interactive, simulate)
        check_inputs(settings, factory, report, interactive, simulate, out)
    check_audio(settings, report, interactive, simulate, out)
    check_brokers(settings, report)
    if factory is not None:
        factory.close()
    if any(p in ("hook", "mute", "leds", "audio") for p in report.failed) and not simulate:
        out("hint: the service holds the GPIO lines and the sound card: sudo systemctl stop headset-station")
    out(f"selftest: {'FAILED: ' + ', '.join(report.failed) if report.failed else 'all parts passed'}")
    return 1 if report.failed else 0
