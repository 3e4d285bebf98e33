"""The architecture, checked from the imports: dependencies point one way.

    analysis -> station -> reporting -> runtime (and tech)

`config`, `protocol` and `errors` are shared by every layer; `sim` (the simulated desk) may
use analysis; `hal` uses only errors and config; the fleet tools use only the protocol and
the config schema (loadgen's reporter mode runs the station's reporting code on purpose).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = {"firmware", "firmware.errors", "firmware.config", "firmware.protocol"}
# what each part may import, beyond the standard library, third-party packages and itself
ALLOWED = {
    "firmware.protocol": {"firmware", "firmware.errors"},
    "firmware.config": {"firmware", "firmware.errors", "firmware.protocol"},
    "firmware.analysis": SHARED,
    "firmware.sim": SHARED | {"firmware.analysis"},
    "firmware.station": SHARED | {"firmware.analysis"},
    "firmware.reporting": SHARED,
    "firmware.runtime": SHARED
    | {"firmware.analysis", "firmware.station", "firmware.reporting", "firmware.sim", "firmware.tech", "hal"},
    "firmware.tech": SHARED | {"firmware.analysis", "firmware.runtime", "firmware.sim", "hal"},
    "hal": {"firmware.errors", "firmware.config"},
    "headset_fleet": {"firmware", "firmware.errors", "firmware.protocol", "firmware.config"},
}
EXCEPTIONS = {"headset_fleet.loadgen_reporter": {"firmware.reporting"}}
OURS = ("firmware", "hal", "headset_fleet")


def modules():
    for base, pkg_root in ((ROOT, "firmware"), (ROOT, "hal"), (ROOT / "tools" / "fleet", "headset_fleet")):
        for path in sorted((base / pkg_root).rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            name = ".".join(rel.parts).removesuffix(".__init__")
            yield name, path


def part_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "firmware" and len(parts) > 1 and parts[1] not in ("errors", "__init__"):
        return ".".join(parts[:2])
    return module if parts[0] == "firmware" else parts[0]


def imports(path: Path, name: str):
    """(module imported, line, inside a function?) for every import of our packages."""
    tree = ast.parse(path.read_text())
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = {id(n) for f in funcs for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            if t.split(".")[0] in OURS:
                yield t, node.lineno, id(node) in nested


ALL = list(modules())


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_dependencies_point_one_way(name, path):
    me = part_of(name)
    allowed = ALLOWED.get(me, set()) | EXCEPTIONS.get(name, set()) | {me}
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {me} imports {target}"
        for target, line, _ in imports(path, name)
        if not any(target == a or target.startswith(a + ".") for a in allowed)
        and not (target == "firmware" and "firmware" in allowed)
    ]
    # `from firmware import __version__` is the package root, allowed where "firmware" is
    bad = [b for b in bad if not b.endswith("imports firmware.__version__") or "firmware" not in allowed]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_no_import_of_our_own_code_hidden_in_a_function(name, path):
    # The CLI loads each subcommand's machinery when that subcommand runs (start-up time on a Pi);
    # everything else imports at the top, so a cycle cannot hide.
    if name in ("firmware.runtime.cli", "headset_fleet.cli"):
        return
    hidden = [f"{path.relative_to(ROOT)}:{line}: {target}" for target, line, inside in imports(path, name) if inside]
    assert not hidden, "\n".join(hidden)


def test_the_station_package_does_not_contain_the_fleet_tools():
    assert not (ROOT / "firmware" / "fleet").exists()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "headset_fleet" not in pyproject.split("[tool.ruff")[0]
