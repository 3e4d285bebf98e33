"""Server-side HTML of the board: the page, one table row per desk, the site summary, alerts.

Rows are rendered here only, once per change: the first page load gets them as HTML, every
browser gets the same cells over Server-Sent Events (JSON of HTML cells), and the page's
JavaScript only patches the cells that changed, keeps the call/hold timers ticking from
`data-since` (epoch seconds) and sorts/filters. Every text from the network is escaped.
"""

from __future__ import annotations

from html import escape
from importlib import resources
from string import Template

from headset_fleet.monitor import clock, duration, epoch

SORTS = {
    "desk": "desk",
    "site": "site",
    "hold": "hold",
    "call": "call",
    "status": "status",
    "faults": "faults",
    "outbox": "outbox",
}
RULE_WORDS = {
    "hold_over": "hold over the limit",
    "dead_air": "dead air",
    "offline_in_call": "offline during a call",
    "fault": "fault",
    "violations": "violations",
}


def _template(name: str) -> Template:
    return Template(resources.files("headset_fleet.board").joinpath("templates", name).read_text(encoding="utf-8"))


def _attr(value) -> str:
    return escape(str(value), quote=True)


def _num(value) -> str:
    return "" if value is None else f"{value:.3f}"


def row_key(site: str, station: str) -> str:
    return f"{site}/{station}"


def row_parts(r: dict, warn_s: float, limit_s: float) -> tuple:
    """A desk row as data for the page: (key, row class, {data attribute: value}, cells), each
    cell (class, data-since or "", inner HTML). The first page joins them into a <tr>
    (render_row); live updates send them as JSON and the page patches only cells that changed."""
    online = r["online"]
    name = escape(r["name"]) + (f' <span class="agent">{escape(r["agent"])}</span>' if r["agent"] else "")
    if r["desk"] and r["desk"] != r["station"]:
        name += f' <span class="sid">{escape(r["station"])}</span>'
    if online:
        since = f"since {clock(r['status_since_s'])}" if r["status_since_s"] else ""
        status = f'<span class="on">online</span> <span class="since">{since}</span>'
    else:
        when = clock(r["status_since_s"])
        since = f"offline since {when}" if r["since_exact"] else f"offline since before {when}"
        status = f'<span class="off">{escape(since)}</span>'
    if r["on_call"]:
        call = (
            ("call", _num(r["call_since_s"]), duration(r["call_s"]))
            if r["call_since_s"] is not None
            else ("call", "", "on call")
        )
    else:
        call = ("call", "", "(was on call)" if r["was_on_call"] else "")
    if r["on_hold"]:
        level = " limit" if r["hold_s"] >= limit_s else " warn" if r["hold_s"] >= warn_s else ""
        hold = (f"hold{level}", _num(r["hold_since_s"]), duration(r["hold_s"]))
    else:
        hold = ("hold", "", "(was on hold)" if r["was_on_hold"] else "")
    cue = (
        f'<span class="en">{escape(r["cue_en"])}</span><span class="zh">{escape(r["cue_zh"])}</span>'
        if r["cue"]
        else ""
    )
    if r["dead_air"]:
        cue = '<span class="deadair">dead air</span> ' + cue
    line = " ".join(
        f'<span class="line-{_attr(v)}">{escape(k)}: {escape(v)}</span>' for k, v in sorted(r["line"].items())
    )
    faults = ", ".join(escape(f"{k}: {v}" if v else k) for k, v in sorted(r["faults"].items()))
    outbox = "" if r["outbox_depth"] is None else str(r["outbox_depth"])
    attrs = {
        "site": r["site"],
        "name": r["name"],
        "online": str(int(online)),
        "faults": str(len(r["faults"])),
        "outbox": outbox or "0",
        "ev": _num(r["last_event_ts_s"]),
    }
    cells = (
        ("site", "", escape(r["site"])),
        ("name", "", name),
        ("status", "", status),
        call,
        hold,
        ("cue", "", cue),
        ("line", "", line),
        ("faults", "", faults),
        ("outbox", "", outbox),
    )
    return row_key(r["site"], r["station"]), "desk" if online else "desk offline", attrs, cells


def render_row(parts: tuple) -> str:
    """One <tr> from row_parts."""
    key, cls, attrs, cells = parts
    data = f'data-k="{_attr(key)}" ' + " ".join(f'data-{k}="{_attr(v)}"' for k, v in attrs.items())
    tds = "".join(
        f'<td class="{c}"' + (f' data-since="{since}"' if since else "") + f">{inner}</td>" for c, since, inner in cells
    )
    return f'<tr class="{cls}" {data}>{tds}</tr>'


def render_summary(sites: list[dict]) -> str:
    out = []
    for s in sites:
        over = ' class="limit"' if s["over_limit"] else ""
        out.append(
            f'<tr data-site="{_attr(s["site"])}"><td>{escape(s["site"])}</td><td>{s["stations"]}</td>'
            f"<td>{s['on_call']}</td><td>{s['on_hold']}</td><td{over}>{s['over_limit']}</td>"
            f"<td>{s['dead_air']}</td><td>{s['offline']}</td><td>{s['faults']}</td></tr>"
        )
    return "".join(out)


def render_alerts(alerts: list[dict]) -> str:
    out = []
    for a in alerts:
        who = escape(a["name"]) + (f" ({escape(a['agent'])})" if a.get("agent") else "")
        out.append(
            f'<li class="alert rule-{_attr(a["rule"])}" data-id="{_attr(a["id"])}" data-rule="{_attr(a["rule"])}">'
            f"<b>{escape(RULE_WORDS.get(a['rule'], a['rule']))}</b> {escape(a['site'])} / {who}: "
            f'{escape(a["detail"])} <span class="since">since {clock(epoch(a["raised_at"]))}</span></li>'
        )
    return "".join(out)


def render_page(
    *,
    rows_html: str,
    summary_html: str,
    alerts_html: str,
    sites: list[str],
    site: str,
    sort: str,
    lang: str,
    warn_s: float,
    limit_s: float,
    sound: bool,
    now_s: float,
    report_link: bool,
) -> str:
    site_options = "".join(
        f'<option value="{_attr(s)}"{" selected" if s == site else ""}>{escape(s)}</option>' for s in sites
    )
    sort_options = "".join(f'<option value="{k}"{" selected" if k == sort else ""}>{k}</option>' for k in SORTS)
    report = (
        '<a href="report">daily report</a>' if report_link else '<span class="muted">daily report: not available</span>'
    )
    return _template("board.html").substitute(
        rows=rows_html,
        summary=summary_html,
        alerts=alerts_html,
        site_options=site_options,
        sort_options=sort_options,
        lang=_attr(lang),
        warn_s=f"{warn_s:g}",
        limit_s=f"{limit_s:g}",
        sound="1" if sound else "0",
        now=f"{now_s:.3f}",
        report=report,
    )


def render_login(error: str = "") -> str:
    return _template("login.html").substitute(error=f'<p class="error">{escape(error)}</p>' if error else "")
