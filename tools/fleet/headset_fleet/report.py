"""Daily reports from the event store, in each site's local time: per site, per desk and per
agent, as a terminal table, CSV, PNG charts and one self-contained HTML page.

`summarize(events, day, ...)` is pure. A site's day is its local calendar day (`--tz`, else
the site's `tz` from the inventory, else the zone the site's stations report in their
`status` birth (recorded by the collector), else the machine's zone), so a Beijing site's
day runs 00:00-24:00 Beijing time and an event at 01:30 UTC counts in its 09:00 hour.

Figures (the README's service rules and events): calls (`call.start`), answer rings (late = more than 3),
talk time (`call.end` duration minus its hold time), average handle time (mean `call.end`
duration), holds (`hold.end` durations against the limit), silent calls (calls where the
`silent-call` script ran), dead air (count and seconds), overtalk and `rule.violation` per
rule id; the counts also as a rate per 100 calls. Desk and agent come from the events'
additive `desk`/`agent` fields (a station without a desk is listed under its id); a site
or desk with no events says "no data" rather than showing zeros that look like a perfect day.

`render_report_html(report)` is the one HTML rendering, used by `report --html` and by the
board; `load_report(db_url, day, ...)` reads the store and summarizes in one call.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import logging
import math
import os
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from headset_fleet.errors import FleetInputError, FleetStorageError
from headset_fleet.provision import read_inventory
from headset_fleet.store import open_store

log = logging.getLogger(__name__)

RULE_IDS = (
    "answer-rings",
    "greet-in-time",
    "silent-call",
    "low-volume",
    "noisy-line",
    "agent-volume",
    "hold-limit",
    "dead-air",
    "no-interrupt",
    "hangup-pause",
    "far-end-gone",
    "call-length",
    "calling-hours",
)
MAX_RINGS = 3
NO_DATA = "no data"
REPORT_TYPES = (
    "call.start",
    "call.end",
    "hold.start",
    "hold.end",
    "script.step",
    "dead_air",
    "overtalk",
    "rule.violation",
)  # the only event types a report reads
RATED = ("late_answers", "holds_over_limit", "silent_calls", "dead_air", "overtalk", "violations")


# ---- time zones ----------------------------------------------------------------------------
def zone(name: str, what: str = "--tz") -> ZoneInfo:
    """The IANA zone `name` (e.g. Asia/Shanghai); FleetInputError naming `what` if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise FleetInputError(f"{what}: unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)") from None


def machine_tz() -> tzinfo:
    """This machine's zone: $TZ, else /etc/localtime (with its DST rules), else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in target:
            return ZoneInfo(target.split("/zoneinfo/", 1)[1])
        with open("/etc/localtime", "rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except (OSError, ZoneInfoNotFoundError, ValueError):
        return UTC


def tz_name(tz: tzinfo) -> str:
    return getattr(tz, "key", None) or str(tz)


def day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The UTC instants where the local calendar day `day` starts and ends in `tz`."""
    lo = datetime(day.year, day.month, day.day, tzinfo=tz)
    nxt = day + timedelta(days=1)
    hi = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return lo.astimezone(UTC), hi.astimezone(UTC)


def _ts(event: dict) -> datetime | None:
    text = event.get("ts")
    if not isinstance(text, str):
        return None
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _num(value) -> float:
    """A finite number from an event field, else 0 (a station or the network may send junk)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    value = float(value)
    return value if math.isfinite(value) and abs(value) < 1e9 else 0.0


# ---- figures -------------------------------------------------------------------------------
@dataclass
class Figures:
    """One scope's figures: a site total (desk == agent == ""), a desk, or an agent."""

    site: str
    station: str = ""
    desk: str = ""
    agent: str = ""
    events: int = 0
    calls: int = 0
    rings: Counter = field(default_factory=Counter)  # answer rings -> calls
    ended: int = 0
    handle_s: float = 0.0
    talk_s: float = 0.0
    holds: int = 0
    hold_durations_s: array = field(default_factory=lambda: array("d"))  # 8 bytes a hold
    silent: set = field(default_factory=set)  # call ids where the silent-call script ran
    dead_air: int = 0
    dead_air_s: float = 0.0
    overtalk: int = 0
    violations: Counter = field(default_factory=Counter)

    def add_event(self, e: dict) -> None:
        self.events += 1
        kind = e.get("type")
        if kind == "call.start":
            self.calls += 1
            self.rings[int(_num(e.get("rings")))] += 1
        elif kind == "call.end":
            self.ended += 1
            duration_s = _num(e.get("duration_s"))
            self.handle_s += duration_s
            self.talk_s += max(duration_s - _num(e.get("hold_s")), 0.0)
        elif kind == "hold.start":
            self.holds += 1
        elif kind == "hold.end":
            self.hold_durations_s.append(_num(e.get("duration_s")))
        elif kind == "script.step" and e.get("script") == "silent-call":
            self.silent.add(str(e.get("call")))
        elif kind == "dead_air":
            self.dead_air += 1
            self.dead_air_s += _num(e.get("duration_s"))
        elif kind == "overtalk":
            self.overtalk += 1
        elif kind == "rule.violation":
            self.violations[str(e.get("rule") or "unknown")[:64]] += 1

    def add(self, other: Figures) -> None:
        self.events += other.events
        self.calls += other.calls
        self.rings.update(other.rings)
        self.ended += other.ended
        self.handle_s += other.handle_s
        self.talk_s += other.talk_s
        self.holds += other.holds
        self.hold_durations_s.extend(other.hold_durations_s)
        self.silent |= {(other.station, c) for c in other.silent} if other.station else other.silent
        self.dead_air += other.dead_air
        self.dead_air_s += other.dead_air_s
        self.overtalk += other.overtalk
        self.violations.update(other.violations)

    def row(self, hold_limit_s: float) -> dict:
        rings, holds_s = self.rings, self.hold_durations_s
        out = {
            "site": self.site,
            "station": self.station,
            "desk": self.desk,
            "agent": self.agent,
            "events": self.events,
            "calls": self.calls,
            "rings_mean": round(sum(r * n for r, n in rings.items()) / rings.total(), 2) if rings else 0.0,
            "rings_max": max(rings) if rings else 0,
            "late_answers": sum(n for r, n in rings.items() if r > MAX_RINGS),
            "talk_s": round(self.talk_s, 1),
            "aht_s": round(self.handle_s / self.ended, 1) if self.ended else None,
            "holds": self.holds,
            "hold_total_s": round(sum(holds_s), 1),
            "hold_max_s": round(max(holds_s), 1) if holds_s else 0.0,
            "holds_over_limit": sum(1 for d in holds_s if d > hold_limit_s),
            "silent_calls": len(self.silent),
            "dead_air": self.dead_air,
            "dead_air_s": round(self.dead_air_s, 1),
            "overtalk": self.overtalk,
            "violations": sum(self.violations.values()),
        }
        for key in RATED:  # per 100 calls; None (not 0) without calls
            out[f"{key}_per_100"] = round(100.0 * out[key] / self.calls, 1) if self.calls else None
        for rule in RULE_IDS:
            out[f"v:{rule}"] = self.violations.get(rule, 0)
        for rule in sorted(set(self.violations) - set(RULE_IDS)):
            out[f"v:{rule}"] = self.violations[rule]
        return out


@dataclass
class SiteReport:
    site: str
    tz: tzinfo
    total: Figures
    desks: list  # [Figures] per station, sorted by desk label
    agents: list  # [Figures] per agent (only events that carry an agent)
    calls_by_hour: list  # 24 local hours
    dead_air_by_hour: list
    dead_air_s_by_hour: list
    overtalk_by_hour: list
    violations_by_hour: dict  # rule -> [24]

    @property
    def has_data(self) -> bool:
        return self.total.events > 0


@dataclass
class Report:
    day: date
    hold_limit_s: float
    sites: list  # [SiteReport], sorted by site

    @property
    def has_data(self) -> bool:
        return any(s.has_data for s in self.sites)

    def rows(self) -> list[dict]:
        """Every scope as a dict: desks, agents, then the site total, site by site."""
        out = []
        for s in self.sites:
            for scope, figs in (("desk", s.desks), ("agent", s.agents), ("site", [s.total])):
                for f in figs:
                    out.append(
                        {"scope": scope, "day": self.day.isoformat(), "tz": tz_name(s.tz), **f.row(self.hold_limit_s)}
                    )
        return out


def query_bounds(day: date, zones) -> tuple[datetime, datetime]:
    """The UTC range that holds the local day `day` of every zone in `zones`."""
    bounds = [day_bounds(day, z) for z in zones]
    return min(b[0] for b in bounds), max(b[1] for b in bounds)


def summarize(
    events: Iterable[dict],
    day: date,
    hold_limit_s: float = 60.0,
    *,
    tz: tzinfo | None = None,
    site_tz: dict | None = None,
    sites=(),
) -> Report:
    """The report of local day `day`. Each site's zone: `tz` if given, else `site_tz[site]`,
    else the machine's. Events outside that site's local day are ignored; `sites` names sites
    to list even without events (from the inventory: they show "no data")."""
    site_tz = site_tz or {}
    default = tz or machine_tz()
    zones: dict = {}
    per_desk: dict = {}
    per_agent: dict = {}
    hours: dict = {}

    def zone_of(site: str) -> tzinfo:
        if site not in zones:
            zones[site] = tz or site_tz.get(site) or default
        return zones[site]

    for site in sites:
        zone_of(site)
    for e in events:
        site = str(e.get("site", ""))
        ts = _ts(e)
        if ts is None:
            continue
        local = ts.astimezone(zone_of(site))
        if local.date() != day:
            continue
        station = str(e.get("station", ""))
        desk = e.get("desk") if isinstance(e.get("desk"), str) else ""
        f = per_desk.setdefault((site, station), Figures(site, station))
        if desk:
            f.desk = desk  # the latest name the station gave
        f.add_event(e)
        agent = e.get("agent")
        if isinstance(agent, str) and agent:
            per_agent.setdefault((site, agent), Figures(site, "", "", agent)).add_event(e)
        h = hours.setdefault(
            site,
            {
                "calls": [0] * 24,
                "dead_air": [0] * 24,
                "dead_air_s": [0.0] * 24,
                "overtalk": [0] * 24,
                "violations": defaultdict(lambda: [0] * 24),
            },
        )
        kind, hour = e.get("type"), local.hour
        if kind == "call.start":
            h["calls"][hour] += 1
        elif kind == "dead_air":
            h["dead_air"][hour] += 1
            h["dead_air_s"][hour] += _num(e.get("duration_s"))
        elif kind == "overtalk":
            h["overtalk"][hour] += 1
        elif kind == "rule.violation":
            h["violations"][str(e.get("rule") or "unknown")[:64]][hour] += 1
    out = []
    for site in sorted(zones):
        desks = sorted(
            (f for (s, _), f in per_desk.items() if s == site), key=lambda f: (f.desk or f.station, f.station)
        )
        agents = sorted((f for (s, _), f in per_agent.items() if s == site), key=lambda f: f.agent)
        total = Figures(site)
        for f in desks:
            total.add(f)
        h = hours.get(site) or {
            "calls": [0] * 24,
            "dead_air": [0] * 24,
            "dead_air_s": [0.0] * 24,
            "overtalk": [0] * 24,
            "violations": {},
        }
        out.append(
            SiteReport(
                site,
                zones[site],
                total,
                desks,
                agents,
                h["calls"],
                h["dead_air"],
                [round(v, 1) for v in h["dead_air_s"]],
                h["overtalk"],
                dict(h["violations"]),
            )
        )
    return Report(day, hold_limit_s, out)


# ---- text, CSV -----------------------------------------------------------------------------
TABLE_COLUMNS = (
    ("calls", "calls", None),
    ("talk", "talk_s", None),
    ("AHT s", "aht_s", None),
    ("late", "late_answers", "late_answers_per_100"),
    ("holds", "holds", None),
    ("hold max s", "hold_max_s", None),
    ("over limit", "holds_over_limit", "holds_over_limit_per_100"),
    ("silent", "silent_calls", "silent_calls_per_100"),
    ("dead air", "dead_air", "dead_air_per_100"),
    ("dead air s", "dead_air_s", None),
    ("overtalk", "overtalk", "overtalk_per_100"),
    ("violations", "violations", "violations_per_100"),
)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def cell(row: dict, key: str, rate_key: str | None) -> str:
    """A table cell: the count, with its rate per 100 calls beside it."""
    value = row[key]
    if value is None:
        return "-"
    text = _duration(value) if key == "talk_s" else f"{value:g}"
    if rate_key is not None and row[rate_key] is not None:
        text += f" ({row[rate_key]:g})"
    return text


def site_heading(report: Report, s: SiteReport) -> str:
    offset = datetime(report.day.year, report.day.month, report.day.day, 12, tzinfo=s.tz).strftime("%z")
    return f"site {s.site}: {report.day.isoformat()}, local time {tz_name(s.tz)} (UTC{offset[:3]}:{offset[3:]})"


def render_tables(report: Report) -> list:
    """Rich renderables: per site a heading and a table, or 'no data'."""
    from rich.table import Table
    from rich.text import Text

    out: list[Table | Text] = []
    if not report.sites:
        return [Text(f"{NO_DATA}: no events on {report.day.isoformat()}")]
    for s in report.sites:
        if not s.has_data:
            out.append(Text(f"{site_heading(report, s)}: {NO_DATA}"))
            continue
        table = Table(
            title=f"{site_heading(report, s)}; hold limit {report.hold_limit_s:g} s; (n) = per 100 calls",
            title_justify="left",
        )
        table.add_column("desk / agent")
        for title, _, _ in TABLE_COLUMNS:
            table.add_column(title, justify="right")
        for f in [*s.desks, *s.agents, s.total]:
            row = f.row(report.hold_limit_s)
            name = (
                (f"agent {f.agent}" if f.agent else f"{f.desk} ({f.station})" if f.desk else f.station)
                if f is not s.total
                else "[bold](site)"
            )
            table.add_row(name, *[cell(row, k, r) for _, k, r in TABLE_COLUMNS])
        out.append(table)
    return out


def write_csv(report: Report, path: Path) -> None:
    rows = report.rows()
    fields = ["scope", "day", "tz", *Figures("").row(report.hold_limit_s)]
    for r in rows:  # unknown rule ids add columns
        fields += [k for k in r if k not in fields]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, restval=0)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


# ---- charts --------------------------------------------------------------------------------
def site_chart_png(report: Report, s: SiteReport) -> bytes:
    """One PNG per site, four panels over the local day: hold durations against the limit,
    calls per hour, violations per rule per hour, dead air and overtalk per hour. A panel
    with nothing to show says "no data". Thread-safe (no pyplot state), so the board can call it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(12, 7.5))
    FigureCanvasAgg(fig)
    (a, b), (c, d) = fig.subplots(2, 2)
    local = f"local hour ({tz_name(s.tz)})"
    hours = list(range(24))

    def no_data(ax) -> None:
        ax.text(0.5, 0.5, NO_DATA, transform=ax.transAxes, ha="center", va="center", fontsize=16, color="#888")

    data = s.total.hold_durations_s
    top = max([report.hold_limit_s * 2, *data])
    a.hist(data, bins=[i * 5 for i in range(int(top // 5) + 2)], color="#4a7ab8", edgecolor="white")
    a.axvline(report.hold_limit_s, color="#c0392b", linestyle="--", label=f"limit {report.hold_limit_s:g} s")
    a.set(title=f"Hold durations ({len(data)} holds)", xlabel="hold duration (s)", ylabel="holds")
    a.legend(loc="upper right")
    if not data:
        no_data(a)

    b.bar(hours, s.calls_by_hour, color="#4a7ab8")
    b.set(title="Calls per hour", xlabel=local, ylabel="calls")
    if not any(s.calls_by_hour):
        no_data(b)

    bottom = [0] * 24
    for rule in sorted(s.violations_by_hour):
        counts = s.violations_by_hour[rule]
        c.bar(hours, counts, bottom=bottom, label=rule)
        bottom = [x + y for x, y in zip(bottom, counts, strict=True)]  # both 24 hours
    c.set(title="Violations per rule per hour", xlabel=local, ylabel="violations")
    if s.violations_by_hour:
        c.legend(fontsize="small", ncol=2, loc="upper left")
    else:
        no_data(c)

    width = 0.4
    d.bar([h - width / 2 for h in hours], s.dead_air_by_hour, width, color="#e67e22", label="dead air")
    d.bar([h + width / 2 for h in hours], s.overtalk_by_hour, width, color="#8e44ad", label="overtalk")
    d.set(title="Dead air and overtalk per hour", xlabel=local, ylabel="occurrences")
    d.legend(loc="upper left")
    if not any(s.dead_air_by_hour) and not any(s.overtalk_by_hour):
        no_data(d)

    for ax in (b, c, d):
        ax.set_xlim(-0.6, 23.6)
        ax.set_xticks(range(0, 24, 2))
    for ax in (a, b, c, d):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(site_heading(report, s))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _file_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def write_pngs(report: Report, out_dir: Path) -> list[Path]:
    """`<site>.png` per site (see site_chart_png)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in report.sites:
        paths.append(out_dir / f"{_file_part(s.site)}.png")
        paths[-1].write_bytes(site_chart_png(report, s))
    return paths


# ---- HTML ----------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{padding:.25em .6em;border-bottom:1px solid #ddd}
td.n,th.n{text-align:right}tr.total td{font-weight:bold;border-top:2px solid #888}
.rate{color:#777;font-size:.85em}.nodata{color:#888;font-style:italic}img{max-width:100%}"""


def render_report_html(report: Report, *, charts: bool = True, title: str = "") -> str:
    """The whole report as one self-contained HTML page (str): per site a heading with its
    local zone, a table per desk and per agent plus the site total (counts with their rate
    per 100 calls), and, with `charts`, the site's chart as an embedded PNG. A site without
    events, or a day without any, says "no data". Used by `report --html FILE` and by the
    board, which serves it as is (`load_report` builds the Report from a store)."""
    esc = html.escape
    title = title or f"Headset stations: report for {report.day.isoformat()}"
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>",
        f"<p>Hold limit {report.hold_limit_s:g} s. Figures in brackets are per 100 calls.</p>",
    ]
    if not report.has_data:
        parts.append(f'<p class="nodata" id="no-data">{NO_DATA}: no events on {report.day.isoformat()}</p>')
    for s in report.sites:
        parts.append(f'<section class="site" data-site="{esc(s.site)}"><h2>{esc(site_heading(report, s))}</h2>')
        if not s.has_data:
            parts.append(f'<p class="nodata">{NO_DATA}</p></section>')
            continue
        parts.append(
            "<table><thead><tr><th>desk / agent</th>"
            + "".join(f'<th class="n">{esc(t)}</th>' for t, _, _ in TABLE_COLUMNS)
            + "</tr></thead><tbody>"
        )
        for f in [*s.desks, *s.agents, s.total]:
            row = f.row(report.hold_limit_s)
            if f is s.total:
                name, cls = "site total", ' class="total"'
            else:
                name = f"agent {f.agent}" if f.agent else (f"{f.desk} ({f.station})" if f.desk else f.station)
                cls = ""
            cells = []
            for _, key, rate in TABLE_COLUMNS:
                value = row[key]
                text = "-" if value is None else (_duration(value) if key == "talk_s" else f"{value:g}")
                if rate and row[rate] is not None:
                    text = f'{esc(text)} <span class="rate">({row[rate]:g})</span>'
                else:
                    text = esc(text)
                cells.append(f'<td class="n">{text}</td>')
            parts.append(f"<tr{cls}><td>{esc(name)}</td>{''.join(cells)}</tr>")
        parts.append("</tbody></table>")
        if charts:
            data = base64.b64encode(site_chart_png(report, s)).decode()
            parts.append(f'<img alt="charts for site {esc(s.site)}" src="data:image/png;base64,{data}">')
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ---- from the store ------------------------------------------------------------------------
def inventory_zones(path: Path) -> tuple[dict, list]:
    """({site: ZoneInfo}, [sites]) from an inventory CSV's optional `tz` column."""
    rows = read_inventory(path, need_broker=False)
    zones = {}
    for r in rows:
        if r.tz and r.site not in zones:
            zones[r.site] = zone(r.tz, f"{path}:{r.line}: tz")
    return zones, sorted({r.site for r in rows})


def reported_zones(reported: dict[str, str]) -> dict:
    """{site: ZoneInfo} of the zones stations reported (store.site_zones); a name that is not a
    known zone is skipped with a warning (it came from the network, not from the user)."""
    zones = {}
    for site, name in reported.items():
        try:
            zones[site] = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            log.warning("report: site %s: its stations report an unknown time zone %r; not used", site, name)
    return zones


def load_report(
    db_url: str, day: date, *, tz: str | None = None, inventory: str | Path | None = None, hold_limit_s: float = 60.0
) -> Report:
    """Read the events of local day `day` from the store at `db_url` and summarize them.
    A site's zone: `tz` for every site, else the `inventory`'s (which also lists its sites),
    else the zone the site's stations report (the store's `stations` table), else the machine's."""
    if not (math.isfinite(hold_limit_s) and 1.0 <= hold_limit_s <= 3600.0):
        raise FleetInputError(f"--hold-limit-s: {hold_limit_s!r} is not a number of seconds from 1 to 3600")
    override = zone(tz) if tz else None
    site_tz, sites = inventory_zones(Path(inventory)) if inventory else ({}, [])
    with open_store(db_url, create=False) as store:
        if override is None:
            site_tz = {**reported_zones(store.site_zones()), **site_tz}
        zones = [override] if override else [*site_tz.values(), machine_tz()]
        lo, hi = query_bounds(day, zones)
        # A stream: the events are folded into per-desk figures as they are read, never all in memory.
        return summarize(
            store.iter_events_between(lo, hi, REPORT_TYPES),
            day,
            hold_limit_s,
            tz=override,
            site_tz=site_tz,
            sites=sites,
        )


def run_report(
    db_url: str,
    day: date,
    *,
    csv_path: str | None = None,
    png_dir: str | None = None,
    html_path: str | None = None,
    tz: str | None = None,
    inventory: str | None = None,
    hold_limit_s: float = 60.0,
) -> int:
    from rich.console import Console

    report = load_report(db_url, day, tz=tz, inventory=inventory, hold_limit_s=hold_limit_s)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a file or pipe: whole names, not an 80-column squeeze
    for part in render_tables(report):
        console.print(part)
    target = ""
    try:
        if csv_path:
            target = csv_path
            write_csv(report, Path(csv_path))
            console.print(f"wrote {csv_path}")
        if png_dir:
            target = png_dir
            for p in write_pngs(report, Path(png_dir)):
                console.print(f"wrote {p}")
        if html_path:
            target = html_path
            path = Path(html_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_report_html(report), encoding="utf-8")
            console.print(f"wrote {html_path}")
    except OSError as exc:
        raise FleetStorageError(f"{target}: cannot write: {exc.strerror or exc}") from None
    return 0
