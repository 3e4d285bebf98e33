"""Provisioning: a fleet inventory CSV -> per-station config and credentials, broker files.

Inventory columns: `station_id, site, desk, profile`, optional `broker`, `agent` (the agent
at that desk at start) and `tz` (the site's IANA time zone, one per site), which go into the
station's `[station]` table (desk, agent, tz). Output under --out:

    stations/<id>/station.toml      [station] + [mqtt], validated with settings_from_dict
    stations/<id>/mqtt-password     generated once, then kept (mode 0600)
    stations/<id>/{ca.crt,client.crt,client.key}   with --ca-dir (fleet CA, created if absent)
    broker/passwd  broker/acl       Mosquitto password file and ACL for every station and service
    broker/headset.conf             Mosquitto listeners binding client ids to users (conf.d snippet)
    broker/<service>-password       passwords of the service users (mode 0600)
    broker/<service>.{crt,key}      with --ca-dir: the service users' client certificates
    broker/{server.crt,server.key,ca.crt}  with --ca-dir and mqtts:// brokers: for the hosts named

Service users: one per collector, monitor and operator instance, because the broker binds a
session to its user (`use_username_as_clientid`): `_collector`, `_monitor`, `_operator` by
default, `_collector-<name>` ... with --collector NAME (repeatable; likewise --monitor, --operator).

Modes: the broker reads passwd, acl and server.key after dropping to its `mosquitto` user, so
they are written owner root (the caller), group `mosquitto`, mode 0640 when that group exists
and may be set here; else passwd and acl 0644 and server.key 0600 with a note saying how to
install it (`install -m 0640 -g mosquitto`). Every other secret is 0600.

Per-desk values a technician sets (calibrate's gains and thresholds, the sound card) belong in
`/etc/headset-station/local.toml`, which the station merges over station.toml and which
provision and install.sh never write.

With --boot-partition MOUNT (and --station ID when the inventory has several rows) the
station's files also go to MOUNT/headset-station/ with an install.sh that, run once as root
on first boot, moves them to /etc/headset-station/. Files are rewritten only when their content changes, so a second run
changes nothing and a changed row changes only that station's files.
"""

from __future__ import annotations

import csv
import grp
import os
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from firmware.config.profiles import profile_names
from firmware.config.settings import name_problem, settings_from_dict
from firmware.errors import ConfigError
from firmware.protocol.brokers import parse_broker
from headset_fleet import credentials as cred
from headset_fleet.errors import FleetStorageError, InventoryError

REQUIRED = ("station_id", "site", "desk", "profile")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # no MQTT wildcards, '/', spaces or '$'
ETC_DIR = "/etc/headset-station"
STATE_DIR = "/var/lib/headset-station"
LOCAL_CONFIG = "local.toml"  # per-desk values beside station.toml; never written by provision
BROKER_GROUP = "mosquitto"  # the Debian/Raspberry Pi OS broker's user and group
INSTALL_SH = """#!/bin/sh
# Install this station's provisioning files into /etc/headset-station (root, once, on first
# boot: e.g. from Raspberry Pi OS firstrun.sh / cloud-init runcmd, or by hand over ssh).
# Secrets become mode 0600, owned by the service user `headset` (systemd/headset-station.service).
set -eu
src="$(cd "$(dirname "$0")" && pwd)"
install -d -m 0750 -g headset /etc/headset-station
for f in station.toml ca.crt client.crt; do
  [ -f "$src/$f" ] && install -m 0644 "$src/$f" "/etc/headset-station/$f"
done
for f in mqtt-password client.key; do
  [ -f "$src/$f" ] && install -m 0600 -o headset -g headset "$src/$f" "/etc/headset-station/$f"
done
rm -f "$src/mqtt-password" "$src/client.key"  # the FAT boot partition is readable by anyone
# /etc/headset-station/local.toml (per-desk values) is never written here.
echo "headset-station: provisioning installed in /etc/headset-station"
"""


@dataclass(frozen=True)
class Row:
    line: int
    station: str
    site: str
    desk: str
    profile: str
    broker: str
    agent: str = ""
    tz: str = ""


def read_inventory(path: Path, default_broker: str | None = None, *, need_broker: bool = True) -> list[Row]:
    """Parse and check the inventory; raise InventoryError 'file:line: problem' on the first error."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror}") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InventoryError(f"{path}:1: missing column {', '.join(missing)} (need {', '.join(REQUIRED)}[, broker])")
    profiles = set(profile_names())
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for raw in reader:
        rec = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(rec.values()):
            continue
        where = f"{path}:{reader.line_num}"
        sid, site = rec["station_id"], rec["site"]
        for col, value in (("station_id", sid), ("site", site)):
            if not ID_RE.match(value):
                raise InventoryError(
                    f"{where}: bad {col} {value!r}: use letters, digits, '.', '_', '-' "
                    "(no '/', '+', '#', spaces; 1-64 chars, not starting with a symbol)"
                )
        if sid in seen:
            raise InventoryError(f"{where}: duplicate station_id {sid!r} (first at line {seen[sid]})")
        seen[sid] = reader.line_num
        if rec["profile"] not in profiles:
            raise InventoryError(f"{where}: unknown profile {rec['profile']!r} (known: {', '.join(sorted(profiles))})")
        broker = rec.get("broker") or default_broker
        if not broker and need_broker:
            raise InventoryError(f"{where}: station {sid!r} has no broker: give --broker URL (or a broker column)")
        try:
            if broker:
                parse_broker(broker)
        except ConfigError:
            raise InventoryError(f"{where}: broker {broker!r} is not an mqtt:// or mqtts:// URL") from None
        for col in ("desk", "agent"):
            why = name_problem(rec.get(col, "")) if rec.get(col) else None
            if why:
                raise InventoryError(f"{where}: {col} {rec[col][:80]!r} {why}")
        tz = rec.get("tz", "")
        if tz:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise InventoryError(
                    f"{where}: tz {tz[:80]!r} is not a time zone (an IANA name such as Asia/Shanghai)"
                ) from None
            other = next((r for r in rows if r.site == site and r.tz and r.tz != tz), None)
            if other is not None:
                raise InventoryError(
                    f"{where}: tz {tz!r} differs from {other.tz!r} for site {site!r} at line {other.line}"
                )
        rows.append(
            Row(reader.line_num, sid, site, rec["desk"], rec["profile"], broker or "", rec.get("agent", ""), tz)
        )
    if not rows:
        raise InventoryError(f"{path}: no stations")
    return rows


def toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def station_toml(row: Row, inventory_name: str, tls_certs: bool) -> str:
    """The station's config file; checked with settings_from_dict before it is written."""
    import tomllib

    lines = [
        f"# Generated by `headset-fleet provision` from {inventory_name} line {row.line}.",
        "# Edit the inventory and provision again rather than editing this file; per-desk values",
        "# (calibrate's gains and thresholds, [audio] device) go in local.toml, merged over it.",
        f"# desk: {row.desk}",
        "[station]",
        f"id = {toml_str(row.station)}",
        f"site = {toml_str(row.site)}",
        f"profile = {toml_str(row.profile)}",
        f"state_dir = {toml_str(STATE_DIR)}",
        f"local_config = {toml_str(LOCAL_CONFIG)}",
        *[
            f"{key} = {toml_str(value)}"
            for key, value in (("desk", row.desk), ("agent", row.agent), ("tz", row.tz))
            if value
        ],
        "",
        "[mqtt]",
        f"brokers = [{toml_str(row.broker)}]",
        f"client_id = {toml_str(f'hs-{row.site}-{row.station}')}",
        f"username = {toml_str(row.station)}",
        f"password_file = {toml_str(ETC_DIR + '/mqtt-password')}",
    ]
    if tls_certs or row.broker.startswith("mqtts://"):
        lines.append(f"ca_file = {toml_str(ETC_DIR + '/ca.crt')}" if tls_certs else 'ca_file = ""')
    if tls_certs:
        lines += [f"cert_file = {toml_str(ETC_DIR + '/client.crt')}", f"key_file = {toml_str(ETC_DIR + '/client.key')}"]
    text = "\n".join(lines) + "\n"
    settings_from_dict(tomllib.loads(text), f"{inventory_name}:{row.line}")
    return text


class Writer:
    """Writes files only when their bytes differ and records what changed."""

    def __init__(self):
        self.changed: list[str] = []
        self.notes: list[str] = []
        self.unchanged = 0

    def write(self, path: Path, data: bytes | str, mode: int = 0o644, gid: int | None = None) -> None:
        """Write `data` with `mode` (and group `gid`) unless the file already holds it."""
        data = data.encode() if isinstance(data, str) else data
        if path.exists() and path.read_bytes() == data:
            self.unchanged += 1
            st = path.stat()
            if gid is not None and st.st_gid != gid:
                _chown_group(path, gid)
            if (st.st_mode & 0o777) != mode:
                _chmod(path, mode)
            return
        existed = path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if gid is not None:
                _chown_group(tmp, gid)
            _chmod(tmp, mode)
            os.replace(tmp, path)
        except OSError as exc:
            raise FleetStorageError(f"{path}: cannot write: {exc.strerror}") from None
        self.changed.append(("updated " if existed else "created ") + str(path))


def _chown_group(path: Path, gid: int) -> None:
    try:
        os.chown(path, -1, gid)
    except OSError as exc:
        raise FleetStorageError(f"{path}: cannot set group {gid}: {exc.strerror}") from None


def broker_group() -> int | None:
    """The gid of group `mosquitto` if it exists and this process may give files to it."""
    try:
        gid = grp.getgrnam(BROKER_GROUP).gr_gid
    except KeyError:
        return None
    return gid if os.geteuid() == 0 or gid in os.getgroups() else None


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError:  # a FAT boot partition has no modes; the first boot sets them
        pass


def _kept_cert(key_path: Path, crt_path: Path, name: str, ca, hosts: list[str] | None = None) -> tuple[bytes, bytes]:
    """The existing key and certificate while still good for `name` (and `hosts`), else new ones."""
    if key_path.exists() and crt_path.exists() and cred.cert_ok(crt_path.read_bytes(), name, ca[1], hosts):
        return key_path.read_bytes(), crt_path.read_bytes()
    return cred.issue_cert(name, ca[0], ca[1], hosts)


def _kept_secret(path: Path) -> str:
    return path.read_text().strip() if path.exists() and path.read_text().strip() else cred.new_password()


def broker_conf(rows: list[Row], broker_dir: Path, tls_files: bool) -> str:
    """A Mosquitto conf.d snippet: the generated passwd and ACL, and one listener per broker
    port of the inventory, each binding client ids to users."""
    d = broker_dir.resolve()
    lines = [
        "# Generated by `headset-fleet provision`. Include it from mosquitto.conf (e.g. copy it to",
        "# /etc/mosquitto/conf.d/); the paths are where provision wrote the files. The main config",
        "# must keep `persistence true` (Debian's does) so collectors' queued events survive a restart.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {d / 'passwd'}",
        f"acl_file {d / 'acl'}",
        "# Events queued for an offline collector session; Mosquitto's default of 1000 drops the rest.",
        "max_queued_messages 100000",
    ]
    listeners: dict[int, bool] = {}
    for row in rows:
        tls, _host, port = parse_broker(row.broker)
        listeners[port] = listeners.get(port, False) or tls
    for port, tls in sorted(listeners.items()):
        lines += [
            "",
            f"listener {port}",
            "# The client id is replaced by the user name: no client can take another user's",
            "# session (a station another station's, or a collector's).",
            "use_username_as_clientid true",
        ]
        if tls:
            certs = d if tls_files else Path("/etc/mosquitto/certs")
            if not tls_files:
                lines.append("# No --ca-dir: put the broker's own CA, certificate and key at these paths.")
            lines += [
                f"cafile {certs / 'ca.crt'}",
                f"certfile {certs / 'server.crt'}",
                f"keyfile {certs / 'server.key'}",
                "tls_version tlsv1.2",
            ]
    return "\n".join(lines) + "\n"


def provision(
    inventory: Path,
    out: Path,
    *,
    ca_dir: Path | None = None,
    boot_partition: Path | None = None,
    station: str | None = None,
    default_broker: str | None = None,
    collectors=(),
    monitors=(),
    operators=(),
) -> Writer:
    """Do the whole job; returns the Writer whose `changed` lists every file written.

    collectors/monitors/operators: instance names, one broker user each (see the module doc)."""
    for option, names in (("--collector", collectors), ("--monitor", monitors), ("--operator", operators)):
        for name in names:
            if not ID_RE.match(name):
                raise InventoryError(f"{option}: bad name {name!r}: use letters, digits, '.', '_', '-' (1-64 chars)")
    rows = read_inventory(inventory, default_broker)
    if boot_partition is not None:
        if not boot_partition.is_dir():
            raise InventoryError(f"{boot_partition}: boot partition is not a mounted directory")
        if station is None and len(rows) > 1:
            raise InventoryError(
                f"{inventory}: {len(rows)} stations; name the one for this boot partition with --station"
            )
        chosen = [r for r in rows if station in (None, r.station)]
        if not chosen:
            raise InventoryError(f"{inventory}: no station {station!r}")
    w = Writer()
    if ca_dir is not None and not (ca_dir / "ca.crt").exists():
        w.changed.append(f"created fleet CA {ca_dir / 'ca.crt'} (keep {ca_dir / 'ca.key'} secret)")
    try:
        ca = cred.load_or_create_ca(ca_dir) if ca_dir else None
    except (OSError, ValueError) as exc:
        raise FleetStorageError(f"{ca_dir}: cannot load or create the fleet CA: {exc}") from None
    existing = cred.read_passwd(out / "broker" / "passwd")
    gid = broker_group()
    entries = []
    services = {
        "collectors": cred.service_users(cred.COLLECTOR_USER, collectors),
        "monitors": cred.service_users(cred.MONITOR_USER, monitors),
        "operators": cred.service_users(cred.OPERATOR_USER, operators),
    }
    for svc in [u for users in services.values() for u in users]:
        secret_path = out / "broker" / f"{svc.lstrip('_')}-password"
        password = _kept_secret(secret_path)
        w.write(secret_path, password + "\n", 0o600)
        entries.append(cred.passwd_entry(svc, password, existing))
        if ca is not None:  # a client certificate too, CN = the user (use_identity_as_username)
            key_path, crt_path = out / "broker" / f"{svc.lstrip('_')}.key", out / "broker" / f"{svc.lstrip('_')}.crt"
            key_pem, crt_pem = _kept_cert(key_path, crt_path, svc, ca)
            w.write(key_path, key_pem, 0o600)
            w.write(crt_path, crt_pem, 0o644)
    files_by_station = {}
    for row in rows:
        sdir = out / "stations" / row.station
        password = _kept_secret(sdir / "mqtt-password")
        files = {
            "station.toml": (station_toml(row, inventory.name, ca is not None).encode(), 0o644),
            "mqtt-password": ((password + "\n").encode(), 0o600),
        }
        if ca is not None and ca_dir is not None:  # ca_dir is set whenever there is a CA
            key_pem, crt_pem = _kept_cert(sdir / "client.key", sdir / "client.crt", row.station, ca)
            files["ca.crt"] = ((ca_dir / "ca.crt").read_bytes(), 0o644)
            files["client.crt"] = (crt_pem, 0o644)
            files["client.key"] = (key_pem, 0o600)
        for name, (data, mode) in files.items():
            w.write(sdir / name, data, mode)
        files_by_station[row.station] = files
        entries.append(cred.passwd_entry(row.station, password, existing))
    if ca is not None and ca_dir is not None:  # the broker's server certificate, for every host the inventory names
        hosts = sorted({host for tls, host, _ in (parse_broker(r.broker) for r in rows) if tls})
        if hosts:
            key_pem, crt_pem = _kept_cert(
                out / "broker" / "server.key", out / "broker" / "server.crt", hosts[0], ca, hosts
            )
            w.write(out / "broker" / "server.key", key_pem, 0o640 if gid is not None else 0o600, gid)
            if gid is None:
                w.notes.append(
                    f"note: {out / 'broker' / 'server.key'} is mode 0600 (no group {BROKER_GROUP} here): "
                    f"install it on the broker with `install -m 0640 -g {BROKER_GROUP}`"
                )
            w.write(out / "broker" / "server.crt", crt_pem, 0o644)
            w.write(out / "broker" / "ca.crt", (ca_dir / "ca.crt").read_bytes(), 0o644)
    broker_mode = 0o640 if gid is not None else 0o644
    w.write(out / "broker" / "passwd", "\n".join(entries) + "\n", broker_mode, gid)
    w.write(out / "broker" / "acl", cred.acl_text([(r.site, r.station) for r in rows], **services), broker_mode, gid)
    w.write(out / "broker" / "headset.conf", broker_conf(rows, out / "broker", ca is not None), 0o644)
    known = {r.station for r in rows}
    for sdir in sorted((out / "stations").iterdir()):
        if sdir.is_dir() and sdir.name not in known:
            w.notes.append(f"note: {sdir} is not in the inventory any more; its broker login and ACL were removed")
    if boot_partition is not None:
        for row in chosen:
            for name, (data, mode) in files_by_station[row.station].items():
                w.write(boot_partition / "headset-station" / name, data, mode)
            w.write(boot_partition / "headset-station" / "install.sh", INSTALL_SH, 0o755)
    return w
