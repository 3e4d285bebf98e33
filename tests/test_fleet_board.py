"""The floor board in a real headless Chromium, against a real Mosquitto, with simulated
stations (paho clients in the station's topic layout) and a real station process.

Chromium is Debian's (`chromium` + `chromium-driver`, installed by tools/dev setup), driven by
Selenium through /usr/bin/chromedriver; nothing is downloaded at run time. The board runs as
its own process (`python -m headset_fleet.cli board`); a webhook receiver and an MQTT
subscriber record the alerts it delivers. A screenshot of the board is saved under the
test's tmp dir (its path is printed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import wave
from datetime import datetime, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fixtures_board import Receiver
from fixtures_fleet import FLEET
from fixtures_mqtt import Collector, free_port, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)
PASSWORD = "floor-board-secret"
HOLD_LIMIT_S, HOLD_WARN_S = 4, 2  # short thresholds so the test sees a hold go amber, then red


def iso(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def start_chromium(tmp_path: Path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed (tools/dev setup installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=tmp_path)}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class BoardProcess:
    """`headset-fleet board` as a child process on a free port."""

    def __init__(self, tmp_path: Path, broker_url: str, rules: Path):
        self.tmp_path, self.broker_url, self.rules = tmp_path, broker_url, rules
        self.port = free_port()
        self.login = tmp_path / "board-login"
        self.login.write_text(PASSWORD + "\n")
        self.login.chmod(0o600)
        self.proc: subprocess.Popen | None = None
        self.extra: list[str] = []  # more options, e.g. --password-file

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> "BoardProcess":
        log = open(self.tmp_path / "board.log", "ab")
        self.proc = subprocess.Popen(
            [
                *FLEET,
                "board",
                "--broker",
                self.broker_url,
                "--login-file",
                str(self.login),
                "--port",
                str(self.port),
                "--alerts",
                str(self.rules),
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        assert wait_until(self._listening, timeout_s=20), (self.tmp_path / "board.log").read_text()
        return self

    def _listening(self) -> bool:
        assert self.proc.poll() is None, (self.tmp_path / "board.log").read_text()
        try:
            urllib.request.urlopen(self.url + "login", timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class SimStation:
    """A station in the station's topic layout: retained birth with a Last Will, QoS 1 events."""

    def __init__(self, broker, site: str, station: str, desk: str = ""):
        self.topic = f"hs/{site}/{station}"
        self.birth = {
            "status": "online",
            "bdSeq": 1,
            "boot_id": f"sim-{station}",
            "reason": "birth",
            "ts": iso(time.time()),
            "station": station,
            "desk": desk,
        }
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"hs-{site}-{station}")
        self.client.will_set(
            f"{self.topic}/status", json.dumps(dict(self.birth, status="offline", reason="will")), 1, retain=True
        )
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.publish(f"{self.topic}/status", json.dumps(self.birth), 1, retain=True).wait_for_publish(5)
        self.seq = 0

    def event(self, kind: str, **fields) -> float:
        self.seq += 1
        now = time.time()
        event = {"type": kind, "ts": iso(now), "seq": self.seq, "id": f"{self.topic}-{self.seq}", **fields}
        self.client.publish(f"{self.topic}/event", json.dumps(event), 1).wait_for_publish(5)
        return now

    def state(self, **state) -> None:
        """The retained state, as the station publishes it (no timestamp: `hold_s` as of now)."""
        self.client.publish(f"{self.topic}/state", json.dumps(state), 1, retain=True).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def js_row(driver, key: str) -> dict | None:
    """What the browser shows for one desk (read in one script: rows are replaced live)."""
    return driver.execute_script(
        """
        var tr = document.querySelector('tr[data-k="' + arguments[0] + '"]');
        if (!tr) return null;
        var hold = tr.querySelector('td.hold'), call = tr.querySelector('td.call');
        return {cls: tr.className, text: tr.innerText, status: tr.querySelector('td.status').innerText,
                hold: hold.innerText, holdCls: hold.className, holdSince: hold.dataset.since || null,
                call: call.innerText, callSince: call.dataset.since || null,
                cue: tr.querySelector('td.cue').innerText, faults: tr.querySelector('td.faults').innerText};
    """,
        key,
    )


def js_alerts(driver) -> list[dict]:
    return driver.execute_script("""
        return Array.prototype.map.call(document.querySelectorAll('#alerts li'),
            function (li) { return {rule: li.dataset.rule, text: li.innerText}; });
    """)


def js_summary(driver) -> dict:
    return driver.execute_script("""
        var out = {};
        document.querySelectorAll('#summary tr').forEach(function (tr) {
            out[tr.dataset.site] = Array.prototype.map.call(tr.children, function (td) { return td.innerText; });
        });
        return out;
    """)


def open_board(driver, board: BoardProcess, *, expect_login: bool) -> None:
    """Open the board; log in when asked to (the session cookie outlives a board restart)."""
    from selenium.webdriver.common.by import By

    driver.get(board.url)
    assert ("/login" in driver.current_url) == expect_login, driver.current_url
    if expect_login:
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "login").click()
    assert wait_until(
        lambda: (
            driver.execute_script(
                "return document.getElementById('conn') && document.getElementById('conn').textContent"
            )
            == "live"
        ),
        10,
    )


def station_process(broker_url: str, state_dir: Path, scenario: Path, station: str, log: Path) -> subprocess.Popen:
    """The real station service (`headset-station run --simulate --scenario`), publishing to the broker."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware.runtime.cli",
            "run",
            "--simulate",
            "--scenario",
            str(scenario),
            "--broker",
            broker_url,
            "--station",
            station,
            "--state-dir",
            str(state_dir),
        ],
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )


HOLD_SCENARIO = """
profile = "hotline-5s"
[audio]
rx = "silence.wav"
[[inputs]]
t = 0.3
ring = true
[[inputs]]
t = 0.8
hook = "off"
[[inputs]]
t = 1.5
mute = true
[[inputs]]
t = 600.0
hook = "on"
"""

IDLE_SCENARIO = """
profile = "hotline-5s"
[audio]
rx = "silence.wav"
[[inputs]]
t = 600.0
ring = true
"""


@pytest.fixture
def board_setup(tmp_path, mqtt_broker_factory):
    broker = mqtt_broker_factory(persistence=True)
    hook = Receiver(free_port()).start()
    rules = tmp_path / "alerts.toml"
    rules.write_text(
        f"[hold]\nlimit_s = {HOLD_LIMIT_S}\nwarn_s = {HOLD_WARN_S}\n[dead_air]\nafter_s = 3600\n"
        f'[webhook]\nurl = "http://127.0.0.1:{hook.port}/alerts"\ntimeout_s = 2\n'
        f'[mqtt]\ntopic = "hs/_fleet/alert"\n[board]\nsound = true\n'
    )
    board = BoardProcess(tmp_path, broker.url, rules).start()
    yield broker, board, hook
    board.stop()
    hook.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, data: bytes | None = None, cookie: str = "") -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request, redirects not followed."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, data=data, headers={"Cookie": cookie} if cookie else {})
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_board_is_not_public(board_setup):
    _broker, board, _hook = board_setup
    assert fetch(board.url)[0] == 303 and fetch(board.url)[1]["location"].endswith("login")
    for path in ("events", "api/state", "session"):
        assert fetch(board.url + path)[0] == 401, path
    # A wrong password gets no cookie; a forged or expired cookie opens nothing; the right one does.
    status, headers, _ = fetch(board.url + "login", data=b"password=wrong-guess")
    assert status == 401 and "set-cookie" not in {k.lower() for k in headers}
    assert fetch(board.url + "api/state", cookie="hs_board=9999999999.00ff")[0] == 401
    status, headers, _ = fetch(board.url + "login", data=f"password={PASSWORD}".encode())
    assert status == 303
    cookie = headers["set-cookie"].split(";")[0]
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=strict" in headers["set-cookie"]
    assert fetch(board.url + "api/state", cookie=cookie)[0] == 200
    expiry, signature = cookie.split("=", 1)[1].split(".")
    assert fetch(board.url + "api/state", cookie=f"hs_board={int(expiry) + 1000}.{signature}")[0] == 401


def test_board_in_chromium_hold_alert_crash_reload(board_setup, tmp_path):
    broker, board, hook = board_setup
    alerts_mqtt = Collector(broker, "hs/_fleet/alert")
    driver = start_chromium(tmp_path)
    sim = SimStation(broker, "sh", "st-07", desk="Desk 7")
    station = None
    try:
        open_board(driver, board, expect_login=True)
        assert wait_until(lambda: js_row(driver, "sh/st-07") is not None, 5)
        sim.event("call.start", call="st-07-1", rings=1)

        # A hold started by a station shows within 1 s, amber at warn_s, red at the limit.
        sent = sim.event("hold.start", call="st-07-1")
        sim.state(call="st-07-1", phase="on_hold", on_hold=True, hold_s=0.0, cue="hold", line={}, faults={})
        assert wait_until(
            lambda: (js_row(driver, "sh/st-07") or {}).get("holdSince"), timeout_s=1.0, interval_s=0.02
        ), js_row(driver, "sh/st-07")
        print(f"\nhold shown {time.time() - sent:.3f} s after it was published")
        row = js_row(driver, "sh/st-07")
        assert "Desk 7" in row["text"] and row["callSince"]
        assert wait_until(lambda: "warn" in js_row(driver, "sh/st-07")["holdCls"], HOLD_WARN_S + 2)
        assert wait_until(lambda: "limit" in js_row(driver, "sh/st-07")["holdCls"], HOLD_LIMIT_S + 2)

        # ... and the alert is on the board, at the webhook and on the fleet topic, once.
        assert wait_until(lambda: any(a["rule"] == "hold_over" and "Desk 7" in a["text"] for a in js_alerts(driver)), 3)
        assert wait_until(lambda: hook.bodies, 5)
        assert wait_until(lambda: alerts_mqtt.payloads(""), 5)
        assert js_summary(driver)["sh"][4] == "1"  # over the limit

        # A real station process goes on hold, then loses power (SIGKILL).
        scenario = tmp_path / "hold.toml"
        scenario.write_text(HOLD_SCENARIO)
        with wave.open(str(tmp_path / "silence.wav"), "wb") as w:  # a scenario needs some audio
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(bytes(32000))
        station = station_process(broker.url, tmp_path / "st-09", scenario, "st-09", tmp_path / "st-09.log")
        key = None

        def real_on_hold():
            nonlocal key
            rows = driver.execute_script(
                "return Array.prototype.map.call(document.querySelectorAll("
                "'#rows tr'), function (tr) { return tr.dataset.k; });"
            )
            key = next((k for k in rows if k.endswith("/st-09")), None)
            return key is not None and (js_row(driver, key) or {}).get("holdSince")

        assert wait_until(real_on_hold, 30), (tmp_path / "st-09.log").read_text()[-2000:]
        time.sleep(1.0)  # a retained state with the hold in it
        station.send_signal(signal.SIGKILL)
        station.wait(10)

        def greyed_without_ghost(row):
            return (
                row is not None
                and "offline" in row["cls"].split()
                and "offline since" in row["status"]
                and row["holdSince"] is None
                and row["callSince"] is None
                and not any(ch.isdigit() for ch in row["hold"])
                and not any(ch.isdigit() for ch in row["call"])
            )

        assert wait_until(lambda: greyed_without_ghost(js_row(driver, key)), 15), js_row(driver, key)
        time.sleep(2.0)  # a timer would have moved by now
        assert greyed_without_ghost(js_row(driver, key)), js_row(driver, key)
        assert wait_until(lambda: any(a["rule"] == "offline_in_call" for a in js_alerts(driver)), 5)

        # A page reload shows the same state.
        driver.refresh()
        assert wait_until(lambda: greyed_without_ghost(js_row(driver, key)), 5), js_row(driver, key)
        assert "limit" in js_row(driver, "sh/st-07")["holdCls"]
        assert any(a["rule"] == "hold_over" for a in js_alerts(driver))
        shot = tmp_path / "board.png"
        driver.save_screenshot(str(shot))
        print(f"board screenshot: {shot}")

        # A newly started board reads the retained will and the retained mid-hold state: no ghost.
        board.stop()
        board.start()
        open_board(driver, board, expect_login=False)
        assert wait_until(lambda: greyed_without_ghost(js_row(driver, key)), 10), js_row(driver, key)
        assert wait_until(lambda: any(a["rule"] == "hold_over" for a in js_alerts(driver)), HOLD_LIMIT_S + 3)

        # The station comes back: resolved.
        scenario.write_text(IDLE_SCENARIO)
        station = station_process(broker.url, tmp_path / "st-09", scenario, "st-09", tmp_path / "st-09b.log")
        assert wait_until(
            lambda: (
                "offline" not in (js_row(driver, key) or {"cls": "offline"})["cls"].split()
                and not js_row(driver, key)["hold"]
                and not js_row(driver, key)["call"]
            ),
            30,
        ), js_row(driver, key)
        assert wait_until(lambda: not any(a["rule"] == "offline_in_call" for a in js_alerts(driver)), 5)

        # The simulated hold ends: the alert clears. Each occurrence reached the webhook once.
        sim.event("hold.end", call="st-07-1", duration_s=30.0)
        sim.state(
            call="st-07-1", phase="conversation", on_hold=False, hold_s=0.0, cue="thank_waiting", line={}, faults={}
        )
        assert wait_until(lambda: not any(a["rule"] == "hold_over" for a in js_alerts(driver)), 5)
        time.sleep(1.0)
        raised = [b for b in hook.bodies if b["state"] == "raised"]
        kinds = sorted((b["rule"], b["station"]) for b in raised)
        # the restarted board raised its own occurrence of the conditions still holding at its start
        assert kinds.count(("hold_over", "st-07")) == 2 and kinds.count(("offline_in_call", "st-09")) == 2, kinds
        assert len({b["id"] for b in raised}) == len(raised)
        mqtt_raised = [a for a in alerts_mqtt.payloads("") if a["state"] == "raised"]
        assert sorted(a["id"] for a in mqtt_raised) == sorted(b["id"] for b in raised)
    finally:
        if station is not None and station.poll() is None:
            station.kill()
            station.wait()
        driver.quit()
        sim.close()
        alerts_mqtt.close()


def test_board_logs_in_with_a_password_file_and_publishes_alerts_the_provisioned_acl_allows(tmp_path):
    """A provisioned broker (passwords, ACL, sessions bound to users): the board logs in as its
    own monitor user with --password-file; its alert reaches another monitor on the fleet topic,
    which no station may write."""
    from fixtures_mqtt import Broker

    from headset_fleet.provision import provision

    port = free_port()
    out = tmp_path / "out"
    (tmp_path / "inv.csv").write_text(
        f"station_id,site,desk,profile,broker\nst-a,s1,D01,hotline-5s,mqtt://127.0.0.1:{port}\n"
    )
    provision(tmp_path / "inv.csv", out, monitors=["board", "viewer"])
    broker = Broker(tmp_path / "mosq", port=port)
    (broker.dir / "mosquitto.conf").write_text(
        ("user root\n" if os.geteuid() == 0 else "") + f"log_dest file {broker.dir}/mosquitto.log\n"
        f"include_dir {out / 'broker'}\n"
    )
    broker.start()
    secret = lambda path: path.read_text().strip()
    viewer = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="_monitor-viewer")
    viewer.username_pw_set("_monitor-viewer", secret(out / "broker" / "monitor-viewer-password"))
    received: list[dict] = []
    viewer.on_connect = lambda c, *a: c.subscribe("hs/_fleet/alert", 1)
    viewer.on_message = lambda c, u, m: received.append(json.loads(m.payload))
    viewer.connect("127.0.0.1", port)
    viewer.loop_start()
    station = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="st-a")
    station.username_pw_set("st-a", secret(out / "stations" / "st-a" / "mqtt-password"))
    station.connect("127.0.0.1", port)
    station.loop_start()
    rules = tmp_path / "alerts.toml"
    rules.write_text("[hold]\nlimit_s = 1\nwarn_s = 1\n")
    board = BoardProcess(tmp_path, f"mqtt://_monitor-board@127.0.0.1:{port}", rules)
    board.extra = ["--password-file", str(out / "broker" / "monitor-board-password")]
    try:
        board.start()
        station.publish("hs/_fleet/alert", b'{"state": "raised", "rule": "forged"}', 1).wait_for_publish(5)
        birth = {"status": "online", "bdSeq": 1, "boot_id": "b", "ts": iso(time.time()), "desk": "D01"}
        station.publish("hs/s1/st-a/status", json.dumps(birth), 1, retain=True).wait_for_publish(5)
        station.publish(
            "hs/s1/st-a/event", json.dumps({"type": "hold.start", "call": "c1", "ts": iso(time.time())}), 1
        ).wait_for_publish(5)
        assert wait_until(lambda: any(a.get("rule") == "hold_over" for a in received), 10), broker.log()[-2000:]
        alert = next(a for a in received if a.get("rule") == "hold_over")
        assert alert["state"] == "raised" and alert["station"] == "st-a" and alert["desk"] == "D01"
        assert not any(a.get("rule") == "forged" for a in received)  # a station cannot write the fleet topic
    finally:
        board.stop()
        for c in (viewer, station):
            c.disconnect()
            c.loop_stop()
        broker.kill()


def test_board_reads_the_broker_on_its_event_loop_and_reconnects_after_a_broker_restart(tmp_path, mqtt_broker_factory):
    """The board reads the broker socket on its own event loop (no paho thread, so no paho
    reconnects either): a broker restart drops the connection, the board reconnects by itself,
    subscribes again and shows what stations publish afterwards."""
    broker = mqtt_broker_factory(persistence=True)
    rules = tmp_path / "alerts.toml"
    rules.write_text("[hold]\nlimit_s = 60\nwarn_s = 45\n")
    board = BoardProcess(tmp_path, broker.url, rules).start()
    status, headers, _ = fetch(board.url + "login", data=f"password={PASSWORD}".encode())
    cookie = headers["set-cookie"].split(";")[0]

    def stations() -> set:
        status, _h, body = fetch(board.url + "api/state", cookie=cookie)
        return {s["station"] for s in json.loads(body)["stations"]} if status == 200 else set()

    first = after = None
    try:
        first = SimStation(broker, "site-1", "before", desk="D1")
        assert wait_until(lambda: "before" in stations(), 10)
        broker.restart(down_s=2.0)
        after = SimStation(broker, "site-1", "after", desk="D2")
        assert wait_until(lambda: "after" in stations(), 20), (tmp_path / "board.log").read_text()[-2000:]
        assert board.proc.poll() is None
    finally:
        for sim in (first, after):
            if sim is not None:
                sim.close()
        board.stop()


def test_a_pushed_row_carries_only_what_changed():
    """The per-tick push sends a known row as its changed cells and attributes (plus `ev`); a
    running timer whose start did not move is not resent for its newer text; a new row is whole."""
    from headset_fleet.board.app import row_change
    from headset_fleet.board.render import row_parts
    from headset_fleet.monitor import fold

    t0 = float(int(time.time()) - 30)  # whole seconds: the ISO stamps carry them exactly
    birth = {"status": "online", "bdSeq": 1, "boot_id": "b", "ts": iso(t0 - 5), "desk": "D1"}
    fleet = fold({}, "hs/s1/st-1/status", json.dumps(birth).encode(), t0)
    fold(fleet, "hs/s1/st-1/event", json.dumps({"type": "call.start", "call": "c1", "ts": iso(t0)}).encode(), t0)
    view = fleet[("s1", "st-1")]
    before = row_parts(view.as_dict(t0 + 10), 45, 60)
    assert row_change(None, before) == before  # new: the whole row
    later = row_parts(view.as_dict(t0 + 20), 45, 60)  # the call timer's text moved on, nothing else
    key, cls, attrs, cells = row_change(before, later)
    assert (key, cls, cells) == ("s1/st-1", "desk", {}) and set(attrs) == {"ev"}
    fold(fleet, "hs/s1/st-1/event", json.dumps({"type": "hold.start", "call": "c1", "ts": iso(t0 + 21)}).encode(), t0)
    held = row_parts(view.as_dict(t0 + 22), 45, 60)
    _key, _cls, attrs, cells = row_change(later, held)
    assert set(cells) == {"4"} and cells["4"][0] == "hold" and cells["4"][1] == f"{t0 + 21:.3f}"
    assert set(attrs) == {"ev"} and attrs["ev"] == f"{t0 + 21:.3f}"


def test_board_reads_a_tls_broker_on_its_event_loop(tmp_path, mqtt_broker_factory, mqtt_ca):
    """mqtts:// with --ca-file: the board's event loop connects and reads the TLS socket; a
    burst of 200 events from one station all reach the board, the newest shown."""
    broker = mqtt_broker_factory(tls=mqtt_ca)
    rules = tmp_path / "alerts.toml"
    rules.write_text("[hold]\nlimit_s = 60\nwarn_s = 45\n")
    board = BoardProcess(tmp_path, broker.url, rules)
    board.extra = ["--ca-file", str(mqtt_ca["ca"])]
    board.start()
    status, headers, _ = fetch(board.url + "login", data=f"password={PASSWORD}".encode())
    cookie = headers["set-cookie"].split(";")[0]
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-pub")
    pub.tls_set(ca_certs=str(mqtt_ca["ca"]))
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        birth = {"status": "online", "bdSeq": 1, "boot_id": "b", "ts": iso(time.time()), "desk": "T1"}
        pub.publish("hs/s1/st-t/status", json.dumps(birth), 1, retain=True).wait_for_publish(5)
        infos = [
            pub.publish("hs/s1/st-t/event", json.dumps({"type": "cue", "cue": f"c{i}", "ts": iso(time.time())}), 1)
            for i in range(200)
        ]
        for info in infos:
            info.wait_for_publish(5)

        def state() -> dict:
            code, _h, body = fetch(board.url + "api/state", cookie=cookie)
            return json.loads(body) if code == 200 else {}

        assert wait_until(lambda: state().get("messages", 0) >= 201, 10), state().get("messages")
        (row,) = state()["stations"]
        assert row["desk"] == "T1" and row["cue"] == "c199"
    finally:
        pub.disconnect()
        pub.loop_stop()
        board.stop()
