"""Server-side HTML of the board: the page, one table row per desk, the site summary, alerts.

Rows are rendered here only, once per change, and the same fragment goes to the first page
load and to every browser over Server-Sent Events; the page's JavaScript only swaps rows in,
keeps the call/hold timers ticking from `data-since` (epoch seconds) and sorts/filters.
Every text from the network is escaped.
"""

from __future__ import annotations

from html import escape
from importlib import resources
from string import Template

from headset_fleet.monitor import clock, duration

SORTS = {"desk": "desk", "site": "site", "hold": "hold", "call": "call", "status": "status",
         "faults": "faults", "outbox": "outbox"}
RULE_WORDS = {"hold_over": "hold over the limit", "dead_air": "dead air", "offline_in_call": "offline during a call",
              "fault": "fault", "violations": "violations"}


def _template(name: str) -> Template:
    return Template(resources.files("headset_fleet.board").joinpath("templates", name).read_text(encoding="utf-8"))


def _attr(value) -> str:
    return escape(str(value), quote=True)


def _num(value) -> str:
    return "" if value is None else f"{value:.3f}"


def row_key(site: str, station: str) -> str:
    return f"{site}/{station}"


def render_row(r: dict, now_s: float, warn_s: float, limit_s: float) -> str:
    """One <tr> for a row of monitor.table_rows, on one line (an SSE data line)."""
    online = r["online"]
    classes = ["desk"] + ([] if online else ["offline"])
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
        call = (f'<td class="call" data-since="{_num(r["call_since_s"])}">{duration(r["call_s"])}</td>'
                if r["call_since_s"] is not None else '<td class="call">on call</td>')
    else:
        call = f'<td class="call">{"(was on call)" if r["was_on_call"] else ""}</td>'
    if r["on_hold"]:
        level = " limit" if r["hold_s"] >= limit_s else " warn" if r["hold_s"] >= warn_s else ""
        hold = f'<td class="hold{level}" data-since="{_num(r["hold_since_s"])}">{duration(r["hold_s"])}</td>'
    else:
        hold = f'<td class="hold">{"(was on hold)" if r["was_on_hold"] else ""}</td>'
    cue = (f'<span class="en">{escape(r["cue_en"])}</span><span class="zh">{escape(r["cue_zh"])}</span>'
           if r["cue"] else "")
    if r["dead_air"]:
        cue = f'<span class="deadair">dead air</span> ' + cue
    line = " ".join(f'<span class="line-{_attr(v)}">{escape(k)}: {escape(v)}</span>'
                    for k, v in sorted(r["line"].items()))
    faults = ", ".join(escape(f"{k}: {v}" if v else k) for k, v in sorted(r["faults"].items()))
    outbox = "" if r["outbox_depth"] is None else str(r["outbox_depth"])
    data = (f'data-k="{_attr(row_key(r["site"], r["station"]))}" data-site="{_attr(r["site"])}" '
            f'data-name="{_attr(r["name"])}" data-online="{int(online)}" data-faults="{len(r["faults"])}" '
            f'data-outbox="{outbox or 0}" data-ev="{_num(r["last_event_ts_s"])}"')
    return (f'<tr class="{" ".join(classes)}" {data}><td class="site">{escape(r["site"])}</td>'
            f'<td class="name">{name}</td><td class="status">{status}</td>{call}{hold}'
            f'<td class="cue" title="{_attr(r["cue"])}">{cue}</td><td class="line">{line}</td>'
            f'<td class="faults">{faults}</td><td class="outbox">{outbox}</td></tr>')


def render_summary(sites: list[dict]) -> str:
    out = []
    for s in sites:
        over = f' class="limit"' if s["over_limit"] else ""
        out.append(f'<tr data-site="{_attr(s["site"])}"><td>{escape(s["site"])}</td><td>{s["stations"]}</td>'
                   f'<td>{s["on_call"]}</td><td>{s["on_hold"]}</td><td{over}>{s["over_limit"]}</td>'
                   f'<td>{s["dead_air"]}</td><td>{s["offline"]}</td><td>{s["faults"]}</td></tr>')
    return "".join(out)


def render_alerts(alerts: list[dict]) -> str:
    out = []
    for a in alerts:
        who = escape(a["name"]) + (f" ({escape(a['agent'])})" if a.get("agent") else "")
        out.append(f'<li class="alert rule-{_attr(a["rule"])}" data-id="{_attr(a["id"])}" data-rule="{_attr(a["rule"])}">'
                   f'<b>{escape(RULE_WORDS.get(a["rule"], a["rule"]))}</b> {escape(a["site"])} / {who}: '
                   f'{escape(a["detail"])} <span class="since">{escape(a["raised_at"][11:19])} UTC</span></li>')
    return "".join(out)


def render_page(*, rows_html: str, summary_html: str, alerts_html: str, sites: list[str], site: str, sort: str,
                lang: str, warn_s: float, limit_s: float, sound: bool, now_s: float, report_link: bool) -> str:
    site_options = "".join(f'<option value="{_attr(s)}"{" selected" if s == site else ""}>{escape(s)}</option>'
                           for s in sites)
    sort_options = "".join(f'<option value="{k}"{" selected" if k == sort else ""}>{k}</option>' for k in SORTS)
    report = '<a href="report">daily report</a>' if report_link else '<span class="muted">daily report: not available</span>'
    return _template("board.html").substitute(
        rows=rows_html, summary=summary_html, alerts=alerts_html, site_options=site_options,
        sort_options=sort_options, lang=_attr(lang), warn_s=f"{warn_s:g}", limit_s=f"{limit_s:g}",
        sound="1" if sound else "0", now=f"{now_s:.3f}", report=report)


def render_login(error: str = "") -> str:
    return _template("login.html").substitute(error=f'<p class="error">{escape(error)}</p>' if error else "")
