"""calibrate: measurements from real recorded speech, proposed gains, minimal TOML edits."""

import os
import pwd
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from fixtures_pulse import speech_wav

from firmware.analysis.measure import measure
from firmware.config.edit import set_keys
from firmware.config.settings import Settings, load_settings
from firmware.errors import InputError
from firmware.sim.wav import read_wav
from firmware.tech.calibrate import TARGET_SPEECH_DBFS, run_calibrate

CONFIG = """# Desk 12, second floor
[station]
id = "desk-12"   # asset tag 4711

[audio]
device = "USB Audio"  # the Plantronics DA80
tx_gain_db = 0.0 # set by calibrate

[gpio]
hook_pin = 17
"""


def test_set_keys_keeps_comments_and_other_keys():
    text = set_keys(
        CONFIG, {("audio", "tx_gain_db"): 6.5, ("audio", "rx_gain_db"): -3.0, ("profile", "noise_dbfs"): -38.0}
    )
    assert "# Desk 12, second floor" in text and "# asset tag 4711" in text
    assert "tx_gain_db = 6.5 # set by calibrate" in text
    assert text.index("rx_gain_db = -3.0") < text.index("[gpio]"), "appended inside its own section"
    data = tomllib.loads(text)
    assert data["audio"] == {"device": "USB Audio", "tx_gain_db": 6.5, "rx_gain_db": -3.0}
    assert data["profile"] == {"noise_dbfs": -38.0} and data["gpio"] == {"hook_pin": 17}


def _recorder(quiet_tx, quiet_rx, speech_tx, speech_rx, rate_hz):
    takes = iter([(quiet_tx, quiet_rx), (speech_tx, speech_rx)])

    def record(settings, seconds):
        tx, rx = next(takes)
        return {"tx": measure(tx, rate_hz), "rx": measure(rx, rate_hz)}

    return record


def test_gains_bring_recorded_speech_to_the_target_and_are_written(tmp_path):
    rate_hz, speech = read_wav(speech_wav())
    rng = np.random.default_rng(1)
    hiss = lambda dbfs: (rng.standard_normal(len(speech)) * 32768 * 10 ** (dbfs / 20) * 0.707).astype(np.int16)
    quiet_speech = (speech * 0.05).astype(np.int16)  # a customer line 26 dB quieter
    config = tmp_path / "station.toml"
    config.write_text(CONFIG)
    settings = load_settings(config).replace(audio={"rate_hz": rate_hz})
    lines = []
    takes = [hiss(-70), hiss(-62), speech + hiss(-70), quiet_speech + hiss(-62)]
    rc = run_calibrate(
        settings, config, seconds=3, assume_yes=True, out=lines.append, recorder=_recorder(*takes, rate_hz)
    )
    assert rc == 0, lines
    written = load_settings(config)
    tx, rx = measure(takes[2], rate_hz), measure(takes[3], rate_hz)
    # The gain is limited by the recording's peak; within that, it aims at the target.
    assert written.audio.tx_gain_db == pytest.approx(
        min(TARGET_SPEECH_DBFS - tx.speech_dbfs, -1 - tx.peak_dbfs), abs=0.5
    )
    assert written.audio.rx_gain_db == pytest.approx(TARGET_SPEECH_DBFS - rx.speech_dbfs, abs=0.5)
    assert written.audio.rx_gain_db - written.audio.tx_gain_db > 20
    # A -62 dBFS hiss raised by ~26 dB sits above the default -45 threshold's margin: threshold raised.
    assert written.profile["noise_dbfs"] > -45
    assert written.station.id == "desk-12" and "# asset tag 4711" in config.read_text()
    assert (tmp_path / "station.toml.bak").read_text() == CONFIG


def test_declined_or_silent_channels_change_nothing(tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(CONFIG)
    zeros = np.zeros(24000, np.int16)
    lines = []
    rc = run_calibrate(
        load_settings(config),
        config,
        assume_yes=True,
        out=lines.append,
        recorder=_recorder(zeros, zeros, zeros, zeros, 8000),
    )
    assert rc == 0 and config.read_text() == CONFIG
    assert any("no test phrase heard" in l for l in lines)
    rate_hz, speech = read_wav(speech_wav())
    rc = run_calibrate(
        load_settings(config).replace(audio={"rate_hz": rate_hz}),
        config,
        out=lines.append,
        ask=lambda prompt: "n",
        recorder=_recorder(zeros, zeros, speech, speech, rate_hz),
    )
    assert rc == 0 and config.read_text() == CONFIG and lines[-1] == "calibrate: nothing written"


def test_wav_backend_end_to_end_without_a_config_file(tmp_path):
    rate_hz, _ = read_wav(speech_wav())
    settings = Settings().replace(
        audio={"backend": "wav", "wav_tx": str(speech_wav()), "rate_hz": rate_hz, "buffer_ms": 60}
    )
    lines = []
    assert run_calibrate(settings, None, seconds=1.0, assume_yes=True, out=lines.append) == 0
    assert any(l.startswith("Proposed: [audio] tx_gain_db") for l in lines), lines
    assert "no --config given" in lines[-1]


# --- all of TOML, through tomlkit -------------------------------------------------------------------

UPDATES = {("audio", "tx_gain_db"): 6.5, ("audio", "rx_gain_db"): -3.0, ("profile", "noise_dbfs"): -38.0}


@pytest.mark.parametrize(
    "text, kept",
    [
        (
            '# top\naudio.tx_gain_db = 0.0 # dotted, set by calibrate\nstation.id = "desk-3"\n\n[gpio]\nhook_pin = 17\n',
            "# dotted, set by calibrate",
        ),
        ('audio = { tx_gain_db = 1.0, device = "USB" }  # inline\n[gpio]\nhook_pin = 17\n', "# inline"),
        ("[audio.cues]\n# a super-table only\n", "# a super-table only"),
        ("", None),
        ('[station]\nid = "a"\n[profile]\n"noise_dbfs" = -50.0  # quoted key\n', "# quoted key"),
    ],
)
def test_set_keys_handles_every_form_of_toml(text, kept):
    out = set_keys(text, UPDATES)
    data = tomllib.loads(out)
    assert data["audio"]["tx_gain_db"] == 6.5 and data["audio"]["rx_gain_db"] == -3.0
    assert data["profile"]["noise_dbfs"] == -38.0
    if kept:
        assert kept in out
    before = tomllib.loads(text)
    for section, table in before.items():  # nothing else changed
        for key, value in table.items():
            if (section, key) not in UPDATES:
                assert data[section][key] == value


def test_set_keys_refuses_a_section_that_is_not_a_table():
    from firmware.errors import ConfigError

    with pytest.raises(ConfigError, match="audio"):
        set_keys("audio = 5\n", UPDATES)


def test_calibrate_writes_a_config_with_dotted_keys(tmp_path):
    rate_hz, speech = read_wav(speech_wav())
    config = tmp_path / "station.toml"
    text = '# desk 3\naudio.tx_gain_db = 0.0  # calibrate\naudio.rx_gain_db = 0.0\nstation.id = "desk-3"\n'
    config.write_text(text)
    zeros = np.zeros(len(speech), np.int16)
    lines = []
    rc = run_calibrate(
        load_settings(config).replace(audio={"rate_hz": rate_hz}),
        config,
        assume_yes=True,
        out=lines.append,
        recorder=_recorder(zeros, zeros, speech, speech, rate_hz),
    )
    assert rc == 0, lines
    written = load_settings(config)
    assert written.audio.tx_gain_db != 0.0 and written.station.id == "desk-3"
    assert "# desk 3" in config.read_text() and "# calibrate" in config.read_text()


def test_eof_at_the_prompt_is_one_line_exit_2(tmp_path):
    rate_hz, _speech = read_wav(speech_wav())
    config = tmp_path / "station.toml"
    config.write_text(f'[audio]\nbackend = "wav"\nwav_tx = "{speech_wav()}"\nrate_hz = {rate_hz}\nbuffer_ms = 60\n')
    proc = subprocess.run(
        [sys.executable, "-m", "firmware.runtime.cli", "calibrate", "--config", str(config), "--seconds", "0.5"],
        capture_output=True,
        text=True,
        input="",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "standard input closed" in proc.stdout + proc.stderr
    # At the second prompt (write? [y/N]) too:
    answers = iter(["\n"])

    def ask(prompt):
        try:
            return next(answers)
        except StopIteration:
            raise EOFError from None

    rate_hz, speech = read_wav(speech_wav())
    zeros = np.zeros(len(speech), np.int16)
    with pytest.raises(InputError, match="standard input closed"):
        run_calibrate(
            load_settings(config),
            config,
            out=lambda line: None,
            ask=ask,
            recorder=_recorder(zeros, zeros, speech, speech, rate_hz),
        )
    assert "gain" not in config.read_text()


# --- the rewritten file keeps its owner, group and mode (issue 9) ----------------------------------


def _calibrate_into(config: Path):
    rate_hz, speech = read_wav(speech_wav())
    zeros = np.zeros(len(speech), np.int16)
    lines = []
    rc = run_calibrate(
        load_settings(config).replace(audio={"rate_hz": rate_hz}),
        config,
        assume_yes=True,
        out=lines.append,
        recorder=_recorder(zeros, zeros, speech, speech, rate_hz),
    )
    assert rc == 0, lines


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (CI runs as root)")
@pytest.mark.parametrize("mode", [0o640, 0o600, 0o644])
def test_calibrate_as_root_keeps_owner_group_and_mode(tmp_path, mode):
    nobody = pwd.getpwnam("nobody")
    config = tmp_path / "station.toml"
    config.write_text(CONFIG)
    os.chown(config, nobody.pw_uid, nobody.pw_gid)
    config.chmod(mode)
    backup = tmp_path / "station.toml.bak"
    backup.write_text("an old backup\n")
    backup.chmod(0o666)  # a stale, wide backup must not keep its mode
    _calibrate_into(config)
    st = config.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (nobody.pw_uid, nobody.pw_gid, mode)
    assert "tx_gain_db" in config.read_text() and "# asset tag 4711" in config.read_text()
    bst = backup.stat()
    assert (bst.st_uid, bst.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert stat.S_IMODE(bst.st_mode) & ~mode == 0, f"backup mode {stat.S_IMODE(bst.st_mode):o} wider than {mode:o}"
    assert backup.read_text() == CONFIG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["station.toml", "station.toml.bak"], "no temp files left"


def test_calibrate_keeps_the_mode_and_a_symlink(tmp_path):
    real = tmp_path / "real.toml"
    real.write_text(CONFIG)
    real.chmod(0o600)
    link = tmp_path / "station.toml"
    link.symlink_to(real)
    _calibrate_into(link)
    assert link.is_symlink() and "tx_gain_db" in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "real.toml.bak").stat().st_mode) == 0o600
