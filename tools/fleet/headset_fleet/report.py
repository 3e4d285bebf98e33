"""Daily reports from the event store: per station and per site, as a table, CSV and PNG charts.

`summarize(events, hold_limit_s)` is pure: it counts calls (`call.start`), answer rings
(`call.start.rings`, late = more than 3), holds (`hold.start`; durations from `hold.end`,
compared with the 60 s limit), dead air (`dead_air` count and seconds), overtalk and
`rule.violation` per rule id (the README's service rules). Days are UTC days of the event `ts`.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from headset_fleet.store import open_store

RULE_IDS = ("answer-rings", "greet-in-time", "silent-call", "low-volume", "noisy-line", "agent-volume",
            "hold-limit", "dead-air", "no-interrupt", "hangup-pause", "far-end-gone", "call-length",
            "calling-hours")
MAX_RINGS = 3


@dataclass
class Figures:
    site: str
    station: str  # "" for a site total
    calls: int = 0
    rings: list = field(default_factory=list)
    holds: int = 0
    hold_durations_s: list = field(default_factory=list)
    dead_air: int = 0
    dead_air_s: float = 0.0
    overtalk: int = 0
    violations: Counter = field(default_factory=Counter)

    def add(self, other: "Figures") -> None:
        self.calls += other.calls
        self.rings += other.rings
        self.holds += other.holds
        self.hold_durations_s += other.hold_durations_s
        self.dead_air += other.dead_air
        self.dead_air_s += other.dead_air_s
        self.overtalk += other.overtalk
        self.violations.update(other.violations)

    def row(self, hold_limit_s: float) -> dict:
        rings = self.rings
        holds_s = self.hold_durations_s
        out = {
            "site": self.site, "station": self.station, "calls": self.calls,
            "rings_mean": round(sum(rings) / len(rings), 2) if rings else 0.0,
            "rings_max": max(rings) if rings else 0,
            "late_answers": sum(1 for r in rings if r > MAX_RINGS),
            "holds": self.holds,
            "hold_total_s": round(sum(holds_s), 1),
            "hold_max_s": round(max(holds_s), 1) if holds_s else 0.0,
            "holds_over_limit": sum(1 for d in holds_s if d > hold_limit_s),
            "dead_air": self.dead_air, "dead_air_s": round(self.dead_air_s, 1),
            "overtalk": self.overtalk,
            "violations": sum(self.violations.values()),
        }
        for rule in RULE_IDS:
            out[f"v:{rule}"] = self.violations.get(rule, 0)
        for rule in sorted(set(self.violations) - set(RULE_IDS)):
            out[f"v:{rule}"] = self.violations[rule]
        return out


@dataclass
class DayReport:
    day: date
    hold_limit_s: float
    stations: list  # [Figures], sorted by (site, station)
    sites: list  # [Figures], one per site, station == ""
    hold_durations_s: list
    violations_by_hour: dict  # rule -> [24 counts]

    def rows(self) -> list[dict]:
        return [f.row(self.hold_limit_s) for f in self.stations] + [f.row(self.hold_limit_s) for f in self.sites]


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def summarize(events: list[dict], day: date, hold_limit_s: float = 60.0) -> DayReport:
    per_station: dict = {}
    by_hour: dict = defaultdict(lambda: [0] * 24)
    for e in events:
        key = (e.get("site", ""), e.get("station", ""))
        f = per_station.setdefault(key, Figures(*key))
        kind = e.get("type")
        if kind == "call.start":
            f.calls += 1
            f.rings.append(int(_num(e.get("rings"))))
        elif kind == "hold.start":
            f.holds += 1
        elif kind == "hold.end":
            f.hold_durations_s.append(_num(e.get("duration_s")))
        elif kind == "dead_air":
            f.dead_air += 1
            f.dead_air_s += _num(e.get("duration_s"))
        elif kind == "overtalk":
            f.overtalk += 1
        elif kind == "rule.violation":
            rule = str(e.get("rule") or "unknown")
            f.violations[rule] += 1
            try:
                by_hour[rule][datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).hour] += 1
            except (KeyError, ValueError):
                pass
    stations = [per_station[k] for k in sorted(per_station)]
    sites: dict = {}
    for f in stations:
        sites.setdefault(f.site, Figures(f.site, "")).add(f)
    all_holds = [d for f in stations for d in f.hold_durations_s]
    return DayReport(day, hold_limit_s, stations, [sites[s] for s in sorted(sites)], all_holds, dict(by_hour))


COLUMNS = ("site", "station", "calls", "rings_mean", "late_answers", "holds", "hold_max_s",
           "holds_over_limit", "dead_air", "dead_air_s", "overtalk", "violations")


def render_table(report: DayReport):
    from rich.table import Table
    table = Table(title=f"stations on {report.day.isoformat()} (UTC); hold limit {report.hold_limit_s:g} s")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("site", "station") else "right")
    for f in report.stations + report.sites:
        row = f.row(report.hold_limit_s)
        cells = [str(row[c]) for c in COLUMNS]
        if not f.station:
            cells = [f"[bold]{c}" for c in cells[:1]] + ["[bold](site)"] + [f"[bold]{c}" for c in cells[2:]]
        table.add_row(*cells)
    return table


def write_csv(report: DayReport, path: Path) -> None:
    rows = report.rows()
    fields = list(rows[0]) if rows else list(Figures("", "").row(report.hold_limit_s))
    for r in rows:  # unknown rule ids add columns
        fields += [k for k in r if k not in fields]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["scope", "day", *fields], restval=0)
        w.writeheader()
        for r in rows:
            w.writerow({"scope": "station" if r["station"] else "site", "day": report.day.isoformat(), **r})


def write_pngs(report: DayReport, out_dir: Path) -> list[Path]:
    """hold-durations.png (histogram with the limit) and violations-by-hour.png (stacked bars)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    data = report.hold_durations_s
    top = max([report.hold_limit_s * 2, *data]) if data else report.hold_limit_s * 2
    ax.hist(data, bins=[i * 5 for i in range(int(top // 5) + 2)], color="#4a7ab8", edgecolor="white")
    ax.axvline(report.hold_limit_s, color="#c0392b", linestyle="--", label=f"limit {report.hold_limit_s:g} s")
    ax.set(title=f"Hold durations, {report.day.isoformat()} ({len(data)} holds)", xlabel="hold duration (s)",
           ylabel="holds")
    ax.legend()
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts
    fig.tight_layout()
    paths.append(out_dir / "hold-durations.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4.5))
    bottom = [0] * 24
    for rule in sorted(report.violations_by_hour):
        counts = report.violations_by_hour[rule]
        ax.bar(range(24), counts, bottom=bottom, label=rule)
        bottom = [a + b for a, b in zip(bottom, counts)]
    ax.set(title=f"Violations per rule per hour (UTC), {report.day.isoformat()}", xlabel="hour", ylabel="violations",
           xticks=range(0, 24, 2))
    if report.violations_by_hour:
        ax.legend(fontsize="small", ncol=2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    paths.append(out_dir / "violations-by-hour.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def run_report(db_url: str, day: date, *, csv_path: str | None = None, png_dir: str | None = None,
               hold_limit_s: float = 60.0) -> int:
    from rich.console import Console

    with open_store(db_url, create=False) as store:
        events = store.events_for_day(day)
    report = summarize(events, day, hold_limit_s)
    console = Console()
    if not report.stations:
        console.print(f"no events on {day.isoformat()} (UTC)")
    else:
        console.print(render_table(report))
    if csv_path:
        write_csv(report, Path(csv_path))
        console.print(f"wrote {csv_path}")
    if png_dir:
        for p in write_pngs(report, Path(png_dir)):
            console.print(f"wrote {p}")
    return 0
