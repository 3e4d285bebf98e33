"""What a fresh machine or an installed station needs: the voice prompts wherever Debian's
packages put them, the station as a wheel in its own venv, root runs that leave no root-owned
state, GPIO errors that name the chip and the reason, and install-pi's pinned, hashed lock."""

from __future__ import annotations

import json
import os
import re
import tomllib
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from firmware.config.extras import SILERO_INSTALL, silero_missing
from firmware.errors import InputError
from firmware.sim import speech

ROOT = Path(__file__).resolve().parents[1]


def _write_prompt(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)


# --- voice prompts -------------------------------------------------------------------------


def test_prompts_found_in_the_wav_packages_own_directory(tmp_path, monkeypatch):
    """asterisk-core-sounds-en-wav alone: en/ is missing, en_US_f_Allison/ has the prompts."""
    en, allison = tmp_path / "en", tmp_path / "en_US_f_Allison"
    _write_prompt(allison / "vm-intro.wav")
    monkeypatch.delenv(speech.PROMPTS_ENV, raising=False)
    monkeypatch.setattr(speech, "PROMPTS_DIRS", (en, allison))
    assert speech.prompts_dir() == allison
    _write_prompt(en / "vm-intro.wav")  # with asterisk-core-sounds-en, en/ comes first
    assert speech.prompts_dir() == en


def test_no_prompts_names_the_packages_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv(speech.PROMPTS_ENV, raising=False)
    monkeypatch.setattr(speech, "PROMPTS_DIRS", (tmp_path / "en", tmp_path / "en_US_f_Allison"))
    with pytest.raises(InputError) as err:
        speech.prompts_dir()
    msg = str(err.value)
    assert "\n" not in msg
    assert str(tmp_path / "en_US_f_Allison") in msg
    assert "asterisk-core-sounds-en asterisk-core-sounds-en-wav" in msg


def test_prompts_env_overrides(tmp_path, monkeypatch):
    _write_prompt(tmp_path / "mine" / "x.wav")
    monkeypatch.setenv(speech.PROMPTS_ENV, str(tmp_path / "mine"))
    assert speech.prompts_dir() == tmp_path / "mine"
    monkeypatch.setenv(speech.PROMPTS_ENV, str(tmp_path / "none"))
    with pytest.raises(InputError, match="none: no voice prompts found"):
        speech.prompts_dir()


# --- root on an installed station -----------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")


def _tiny_scenario(tmp_path: Path) -> Path:
    rate = 16000
    for ch in ("rx", "tx"):
        speech.write(tmp_path / f"{ch}.wav", speech.silence(1.0, rate), rate)
    path = tmp_path / "s.toml"
    path.write_text(
        'profile = "hotline-5s"\n[audio]\nrx = "rx.wav"\ntx = "tx.wav"\n[[inputs]]\nt = 0.0\nhook = "off"\n'
    )
    return path


@needs_root
@pytest.mark.parametrize("command", ["replay --publish", "run --simulate"])
def test_root_leaves_no_root_owned_state_in_the_service_users_dir(tmp_path, command):
    """`sudo headset-station run ...` on a station whose state dir belongs to the service user
    stops before creating anything, with the command to use instead."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    scenario = _tiny_scenario(tmp_path)
    if command == "replay --publish":
        args = ["replay", str(scenario), "--publish", "--broker", "mqtt://127.0.0.1:9", "--drain-timeout", "1"]
    else:
        args = ["run", "--simulate", "--scenario", str(scenario)]
    args += ["--state-dir", str(state)]
    proc = subprocess.run(
        [sys.executable, "-m", "firmware.runtime.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"run as the service user: sudo -u nobody headset-station {args[0]} " in line
    assert sorted(p.name for p in state.iterdir()) == []


# --- GPIO errors ----------------------------------------------------------------------------


def test_gpio_no_chip_on_a_machine_that_is_not_a_pi(tmp_path):
    from hal.gpio import chip_problem

    problem = chip_problem(chip_dir=str(tmp_path), model_files=(str(tmp_path / "model"),))
    assert problem == (
        f"{tmp_path}/gpiochip0: no such device; this is not a Raspberry Pi "
        "(no board model in /proc/device-tree): use --simulate"
    )


def test_gpio_no_chip_on_a_pi_and_the_pi5_chip(tmp_path):
    from hal.gpio import chip_problem

    (tmp_path / "model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    files = (str(tmp_path / "model"),)
    assert chip_problem(chip_dir=str(tmp_path), model_files=files) == (
        f"{tmp_path}/gpiochip0: no such device on this Raspberry Pi 5 Model B Rev 1.0 (is the GPIO driver loaded?)"
    )
    (tmp_path / "gpiochip4").touch()
    os.chmod(tmp_path / "gpiochip4", 0o666)
    assert chip_problem(chip_dir=str(tmp_path), model_files=files) is None


def test_gpio_permission_denied_names_the_group():
    """A user outside the chip's group (root becomes `nobody` for the check; root may open anything)."""
    from hal.gpio import chip_problem

    chip_dir = Path(tempfile.mkdtemp(prefix="hs-gpio-"))  # outside pytest's root-only tmp
    try:
        os.chmod(chip_dir, 0o755)
        (chip_dir / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
        (chip_dir / "gpiochip0").touch()
        os.chmod(chip_dir / "gpiochip0", 0o660 if os.geteuid() == 0 else 0o000)
        args = {"chip_dir": str(chip_dir), "model_files": (str(chip_dir / "model"),)}
        if os.geteuid() == 0:
            import pwd

            nobody = pwd.getpwnam("nobody")
            os.setegid(nobody.pw_gid)
            os.seteuid(nobody.pw_uid)
            try:
                problem = chip_problem(**args)
            finally:
                os.seteuid(0)
                os.setegid(0)
            user = "nobody"
        else:
            problem = chip_problem(**args)
            user = __import__("pwd").getpwuid(os.geteuid()).pw_name
        assert problem is not None
        assert problem.startswith(
            f"{chip_dir}/gpiochip0: permission denied for user {user} (the chip belongs to group "
        )
    finally:
        shutil.rmtree(chip_dir)


def test_gpio_lgpio_without_a_chip_is_one_line_exit_1(tmp_path):
    """The service's own command with GPIOZERO_PIN_FACTORY=lgpio where there is no gpiochip."""
    from hal.gpio import chip_problem

    if chip_problem() is None:
        pytest.skip("this machine has a usable GPIO chip")
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "lgpio"}
    proc = subprocess.run(
        [sys.executable, "-m", "firmware.runtime.cli", "run", "--state-dir", str(tmp_path / "s")],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("headset-station: error: gpio.pin_factory 'lgpio': ")
    assert "/dev/gpiochip" in line or "not installed" in line


# --- the station as a wheel, as install-pi installs it ---------------------------------------


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """A wheel built from a copy of the checkout, installed (not editable, no dependencies) into a
    fresh venv that sees this venv's packages behind its own, as install-pi's venv sees apt's."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "build", "*.egg-info", "__pycache__", ".hypothesis", ".ruff_cache", ".pytest_cache"
        ),
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # build isolation: pip gets the build backend (pyproject's setuptools>=68) as for any sdist
    subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(tmp / "dist"), str(src)], check=True, timeout=600)
    (wheel,) = (tmp / "dist").glob("headset_station-*.whl")
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    import sysconfig

    (Path(purelib) / "_dev_venv_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [*pip, "--python", str(py), "install", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300
    )
    return env_dir


@pytest.mark.integration
def test_wheel_runs_check_config_and_replay_from_its_own_venv(wheel_venv, tmp_path):
    bin_ = wheel_venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")

    def run(*args, **kw):
        return subprocess.run(
            [str(a) for a in args],
            check=False,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=300,
            **kw,
        )

    where = run(bin_ / "python", "-c", "import firmware, hal; print(firmware.__file__); print(hal.__file__)")
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert line.startswith(str(wheel_venv)), line  # the installed copy, not the checkout
    defaults = run(bin_ / "headset-station", "check-config", "--defaults")
    assert defaults.returncode == 0, defaults.stderr
    (tmp_path / "station.toml").write_text(defaults.stdout)
    check = run(bin_ / "headset-station", "check-config", tmp_path / "station.toml")
    assert check.returncode == 0, check.stderr
    profiles = run(bin_ / "headset-station", "profiles")
    assert profiles.returncode == 0 and "hotline-5s" in profiles.stdout, profiles.stderr
    scenario = run(bin_ / "python", "-c", "from firmware.sim.demo import demo_scenario; print(demo_scenario())")
    assert scenario.returncode == 0, scenario.stderr
    replay = run(bin_ / "headset-station", "replay", scenario.stdout.strip())
    assert replay.returncode == 0, replay.stderr
    types = [json.loads(line)["type"] for line in replay.stdout.splitlines()]
    assert types[0] == "station.online" and "call.end" in types


# --- install-pi's lock file -------------------------------------------------------------------

LOCK = ROOT / "tools" / "pi-requirements.txt"


def _lock_entries(text: str) -> dict[str, list[str]]:
    """{name: [hashes]} of a pip requirements file in pip-compile/uv form."""
    entries: dict[str, list[str]] = {}
    name = None
    for line in text.splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line):
            name = m.group(1).lower()
            entries[name] = []
        elif name and (m := re.match(r"^\s+--hash=sha256:([0-9a-f]{64})", line)):
            entries[name].append(m.group(1))
        elif line and not line.startswith((" ", "#")):
            raise AssertionError(f"unpinned or unexpected line in the lock: {line!r}")
    return entries


def test_pi_lock_is_pinned_hashed_and_says_how_to_regenerate():
    text = LOCK.read_text()
    entries = _lock_entries(text)
    assert {"lgpio", "setuptools"} <= set(entries)
    # every runtime dependency of the station is in the lock (a new one must be locked too, or
    # install-pi's --require-hashes stops on the Pi)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    assert wanted - {"pyaudio"} <= set(entries), sorted(wanted - {"pyaudio"} - set(entries))
    assert "pyaudio" not in entries  # Debian's python3-pyaudio: nothing to compile on the Pi
    assert all(entries.values()), [n for n, h in entries.items() if not h]
    assert "--generate-hashes" in text and "--python-platform aarch64-unknown-linux-gnu" in text
    assert "--python-version 3.11" in text


def test_install_pi_drops_lgpio_from_the_lock_when_apt_has_it():
    """Raspberry Pi OS: python3-lgpio comes from apt, the rest of the lock stays intact."""
    script = (ROOT / "tools" / "install-pi").read_text()
    (awk,) = re.findall(r"awk '(/\^lgpio==/[^']*)'", script)
    out = subprocess.run(["awk", awk, str(LOCK)], capture_output=True, text=True, check=True).stdout
    full, kept = _lock_entries(LOCK.read_text()), _lock_entries(out)
    assert "lgpio" not in kept
    assert kept == {k: v for k, v in full.items() if k != "lgpio"}


# --- install-pi --with-silero: the [silero] extra's lock and its check ------------------------

SILERO_LOCK = ROOT / "tools" / "pi-silero-requirements.txt"
SILERO_IN = ROOT / "tools" / "pi-silero-requirements.in"


def _lock_pins(text: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r"(?m)^([A-Za-z0-9_.-]+)==(\S+)", text)}


def test_pi_silero_lock_has_the_extra_without_torch_and_agrees_with_the_main_lock():
    text = SILERO_LOCK.read_text()
    entries, pins = _lock_entries(text), _lock_pins(text)
    assert {"onnxruntime", "silero-vad"} <= set(entries)
    # silero-vad's metadata pulls torch (and with it sympy, networkx, ...): none of it on the Pi
    assert not {"torch", "torchaudio", "sympy", "networkx"} & set(entries), sorted(entries)
    assert all(entries.values()), [n for n, h in entries.items() if not h]
    # the versions are the ones the station asks for: pyproject's [silero] extra, and the
    # silero-vad the config error tells a developer to install
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["silero"]
    (silero_spec,) = re.findall(r"'(silero-vad[^']*)'", SILERO_INSTALL)
    for spec in [*extra, silero_spec]:
        req = Requirement(spec)
        assert req.name.lower() in pins and req.specifier.contains(pins[req.name.lower()]), (spec, pins)
    # a package in both locks (numpy) has the same pin and hashes, or the second install would
    # change what the first installed (regenerate the silero lock after the main one)
    main = _lock_entries(LOCK.read_text())
    main_pins = _lock_pins(LOCK.read_text())
    for name in set(entries) & set(main):
        assert (pins[name], sorted(entries[name])) == (main_pins[name], sorted(main[name])), name
    # generated by the command its .in documents
    (cmd,) = re.findall(r"(?m)^#\s+(uv pip compile .*)$", text)
    assert cmd in SILERO_IN.read_text()
    assert "--python-platform aarch64-unknown-linux-gnu" in cmd and "--python-version 3.11" in cmd
    assert "-c tools/pi-requirements.txt" in cmd


def _install_pi_silero_check() -> str:
    """The Python check install-pi --with-silero runs in the venv after installing the lock."""
    script = (ROOT / "tools" / "install-pi").read_text()
    (code,) = re.findall(r"""venv/bin/python" -c '(\nimport sys\nfrom firmware.config.extras[^']*)'""", script)
    return code


def test_install_pi_with_silero_installs_its_lock_the_same_way_and_says_what_to_set():
    script = (ROOT / "tools" / "install-pi").read_text()
    assert 'install --require-hashes --only-binary=:all: --no-deps -r "$SILERO_LOCK"' in script
    help_text = subprocess.run(
        ["bash", str(ROOT / "tools" / "install-pi"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--with-silero" in help_text and "pi-silero-requirements.txt" in help_text
    assert not help_text.rstrip().endswith("pipefail")  # only the header comment
    assert 'second_stage = "silero"' in script


@pytest.mark.skipif(
    silero_missing() is not None,
    reason="the [silero] extra is not installed here (tools/dev setup installs it)",
)
def test_install_pi_silero_check_passes_with_the_extra_and_names_a_broken_model(tmp_path):
    code = _install_pi_silero_check()
    ok = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    # a silero_vad package whose model file is not a model (a truncated download, a bad disk)
    # found first on the path: one line naming the file, exit 1
    model = tmp_path / "shadow" / "silero_vad" / "data" / "silero_vad.onnx"
    model.parent.mkdir(parents=True)
    (model.parent.parent / "__init__.py").write_text("raise ImportError('never imported by the station')\n")
    model.write_bytes(b"not an onnx model\n" * 10)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "shadow")}
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert bad.returncode == 1
    lines = bad.stdout.strip().splitlines()
    assert len(lines) == 1, bad.stdout + bad.stderr
    assert lines[0].startswith(f"onnxruntime cannot load {model}: ")
