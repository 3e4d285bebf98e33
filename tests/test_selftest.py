"""selftest in simulate / non-interactive mode: one line per part, non-zero exit on failure."""


from firmware.config.settings import Settings
from firmware.tech.selftest import run_selftest


def run(settings, **kw):
    lines = []
    rc = run_selftest(settings, out=lines.append, **kw)
    return rc, lines


def test_simulated_desk_passes_every_part():
    rc, lines = run(Settings(), simulate=True, interactive=False)
    text = "\n".join(lines)
    assert rc == 0, text
    for part in ("leds", "hook", "mute", "audio tx", "audio rx"):
        assert f"PASS {part}:" in text
    assert "SKIP broker: no broker configured" in text
    assert lines[-1] == "selftest: all parts passed"


def test_unreachable_broker_and_missing_sound_card_fail_with_one_clear_line_each():
    settings = Settings().replace(mqtt={"brokers": ["mqtt://127.0.0.1:9"]},
                                  audio={"backend": "pyaudio", "device": "no-such-usb-card"},
                                  gpio={"pin_factory": "mock"})
    rc, lines = run(settings, interactive=False)
    assert rc == 1
    fails = [l for l in lines if l.startswith("FAIL")]
    assert any(l.startswith("FAIL broker mqtt://127.0.0.1:9: connection refused") for l in fails), lines
    assert any(l.startswith("FAIL audio:") and "no-such-usb-card" in l for l in fails), lines
    assert "FAILED: " in lines[-1]


def test_missing_tls_file_is_a_fail_line_not_a_crash():
    settings = Settings().replace(mqtt={"brokers": ["mqtts://127.0.0.1:9"], "ca_file": "/nonexistent/ca.crt"})
    rc, lines = run(settings, simulate=True, interactive=False)
    assert rc == 1
    assert any(l.startswith("FAIL broker mqtts://127.0.0.1:9:") and "/nonexistent/ca.crt" in l for l in lines), lines


def test_broker_check_against_a_real_mosquitto(mqtt_broker):
    mosquitto_url = mqtt_broker.url
    rc, lines = run(Settings().replace(mqtt={"brokers": [mosquitto_url]}), simulate=True, interactive=False)
    assert rc == 0 and any(l.startswith(f"PASS broker {mosquitto_url}: connected") for l in lines), lines
