"""The page at ``/``: where the money goes, at a glance, in one small HTML document.

:func:`summarise` keeps what the page needs from a good poll's snapshot (a few dozen
figures, not the snapshot); :func:`render_page` makes the page from that summary and the
poll's status, once per poll, never on request. No JavaScript, no asset from elsewhere:
inline CSS and one inline ``<svg>`` bar chart whose bars carry their own labels, so it
reads without colour and prints. Every string from the API or the settings goes through
:func:`html.escape`. A team's row in the chart, drawn as text::

    Platform Café · budget 5,000.00 USD
    ██████████████████████ invoice 4,216.37 USD
    ██████ unbilled 1,180.20 USD        ┆ (the budget mark)

>>> money(4216.371, "usd")
'4,216.37 USD'
>>> page = render_page(PageView(version="1.0")).decode()
>>> "No figures yet" in page, "<script" in page
(True, False)
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from string import Template

from exporter.api.model import Credit, Team
from exporter.snapshot import InvoiceFigures, Snapshot, UnbilledFigures

TOP_PROJECTS = 10
NAME_CHARS = 36  # longer names are cut in the chart; the full name is in its <title>
ROW = 72  # px per team in the chart: its name, then two bars
BAR = 18  # px, a bar's height
SPAN = 96.0  # % of the chart's width the largest amount reaches


@dataclass(frozen=True, slots=True)
class TeamRow:
    team_id: str
    name: str
    invoice: float | None
    unbilled: float | None
    budget: float | None


@dataclass(frozen=True, slots=True)
class ProjectRow:
    name: str
    team: str
    amount: float


@dataclass(frozen=True, slots=True)
class Summary:
    """What the page shows of one good poll; teams and projects most expensive first."""

    invoice: InvoiceFigures
    unbilled: UnbilledFigures | None
    teams: tuple[TeamRow, ...]
    projects: tuple[ProjectRow, ...]
    credit: Credit | None = None
    month: tuple[ProjectRow, ...] | None = None  # this month's top projects (None: not broken down)
    month_through: float | None = None  # how far this month's breakdown goes


@dataclass(frozen=True, slots=True)
class PageView:
    """Everything one rendering needs. ``summary`` None: no figures to show (yet, or stale)."""

    version: str
    summary: Summary | None = None
    result: str = "pending"  # the last poll's: "ok", a failure reason, or "pending"
    last_poll: float | None = None  # Unix time the last poll ended
    last_success: float | None = None
    requests: int | None = None  # requests the last poll spent
    ratelimit_remaining: float | None = None
    staleness_seconds: float | None = None


def summarise(snapshot: Snapshot, last: Summary | None = None) -> Summary:
    """What the page shows of ``snapshot``; one that kept an earlier read's breakdown
    (``teams`` None) keeps its invoice amounts and projects from ``last``."""
    unbilled = {t.team_id: t.amount for t in snapshot.unbilled.teams} if snapshot.unbilled else {}
    budgets = {b.team_id: b.amount for b in snapshot.budgets}
    if snapshot.teams is None:
        assert last is not None, "a kept breakdown needs the summary of its read"
        invoiced = [(row.team_id, row.name, row.invoice) for row in last.teams]
        top = last.projects
    else:
        invoiced = [(t.id, t.name or t.id, t.price.total) for t in snapshot.teams]
        top = _top(snapshot.teams, {})
    teams = [
        TeamRow(team_id, name, amount, unbilled.get(team_id), budgets.get(team_id))
        for team_id, name, amount in invoiced
    ]
    teams.sort(key=lambda row: -max(row.invoice or 0.0, row.unbilled or 0.0))
    names = {team_id: name for team_id, name, _ in invoiced}
    month = snapshot.month
    return Summary(
        snapshot.invoice,
        snapshot.unbilled,
        tuple(teams),
        top,
        snapshot.credit,
        None if month is None else _top(month.teams, names),
        None if month is None else month.through,
    )


def _top(teams: Iterable[Team], names: Mapping[str, str]) -> tuple[ProjectRow, ...]:
    """The most expensive projects of ``teams``, team names from ``names`` (the invoice's)."""
    rows = [
        ProjectRow(p.name or p.id, t.name or names.get(t.id) or t.id, p.price.total)
        for t in teams
        for p in t.projects or ()
        if p.price.total is not None
    ]
    rows.sort(key=lambda row: -row.amount)
    return tuple(rows[:TOP_PROJECTS])


def money(amount: float | None, currency: str) -> str:
    return "no figure" if amount is None else f"{amount:,.2f} {currency.upper()}".rstrip()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _when(unix: float | None, fmt: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    if unix is None:
        return "never"
    try:
        return time.strftime(fmt, time.gmtime(unix))
    except (OverflowError, OSError, ValueError):  # a time the calendar cannot show
        return f"{unix:g} (Unix time)"


def _cut(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1].rstrip() + "…"


def _bar(kind: str, amount: float | None, top: float, y: int, cur: str) -> tuple[str, str]:
    """A bar and its label, apart: the budget mark goes between them."""
    label = f"{kind} {money(amount, cur)}"
    if amount is None:
        return "", f'<text x="0" y="{y + 14}">{_e(label)}</text>'
    pct = max(amount, 0.0) / top * SPAN
    if pct > 50:  # room inside the bar: label at its end
        text = f'<text x="{pct:.2f}%" dx="-6" y="{y + 14}" text-anchor="end" class="in {kind}">'
    else:
        text = f'<text x="{pct:.2f}%" dx="5" y="{y + 14}">'
    rect = f'<rect class="{kind}" x="0" y="{y}" width="{pct:.2f}%" height="{BAR}"/>'
    return rect, f"{text}{_e(label)}</text>"


def _chart(summary: Summary, cur: str) -> str:
    amounts = [a for t in summary.teams for a in (t.invoice, t.unbilled, t.budget) if a]
    top = max([a for a in amounts if a > 0], default=1.0)
    two = summary.unbilled is not None
    row = ROW if two else ROW - BAR - 4
    parts = []
    for i, team in enumerate(summary.teams):
        name = f"<tspan>{_e(_cut(team.name))}</tspan>"
        if team.budget is not None:
            over = ", over" if (team.invoice or 0) > team.budget else ""
            name += f'<tspan class="b"> · budget {_e(money(team.budget, cur))}{over}</tspan>'
        bars = [_bar("invoice", team.invoice, top, 20, cur)]
        if two:
            bars.append(_bar("unbilled", team.unbilled, top, 20 + BAR + 4, cur))
        parts.append(f'<g transform="translate(0 {i * row})"><title>{_e(team.name)}</title>')
        parts.extend(rect for rect, _ in bars)
        if team.budget is not None:
            x = f"{max(team.budget, 0.0) / top * SPAN:.2f}%"
            line = f'x1="{x}" x2="{x}" y1="17" y2="{row - 8}"/>'
            parts.append(f'<line class="halo" {line}<line class="mark" {line}')
        parts.append(f'<text y="14" class="n">{name}</text>')
        parts.extend(text for _, text in bars)
        parts.append("</g>")
    return f'<svg width="100%" height="{len(summary.teams) * row}">{"".join(parts)}</svg>'


def _figures(s: Summary) -> str:
    inv, cur = s.invoice, s.invoice.currency
    paid = {True: "yes", False: "no", None: "unknown"}[inv.paid]
    tax = money(inv.tax_amount, cur)
    if inv.tax_ratio is not None:
        tax += f" ({inv.tax_ratio * 100:g} %)"
    period = f"{_when(inv.period_start, '%Y-%m-%d')} to {_when(inv.period_end, '%Y-%m-%d')}"
    rows = [("ID", inv.id), ("Period", period), ("Total", money(inv.total, cur))]
    rows += [("Tax", tax), ("Paid", paid)]
    if inv.status is not None:
        rows.append(("Status", inv.status))
    cards = [("Invoice", rows)]
    if s.credit is not None:
        c, credit_cur = s.credit, s.credit.currency or cur
        cards.append(
            (
                "Credit",
                [
                    ("Available", money(c.available, credit_cur)),
                    ("Pending", money(c.pending, credit_cur)),
                    ("Balance", money(c.customer_balance, credit_cur)),
                    ("Synced", _when(c.synced_at, "%Y-%m-%d %H:%M UTC")),
                ],
            )
        )
    if s.unbilled is not None:
        u = s.unbilled
        since, through = (_when(t, "%Y-%m-%d %H:%M") for t in (u.since, u.through))
        window = [("Spend", money(u.total, cur)), ("Window", f"{since} to {through} UTC")]
        cards.append(("Not yet invoiced", window))
    out = ['<div class="cards">']
    for title, pairs in cards:
        cells = "".join(f"<tr><th>{k}</th><td>{_e(v)}</td></tr>" for k, v in pairs)
        out.append(f'<section><h2>{title}</h2><table class="kv">{cells}</table></section>')
    out.append("</div>")
    out.append("<section><h2>Spend by team</h2>" + _chart(s, cur) + "</section>")
    out.append(f"<section><h2>The {TOP_PROJECTS} most expensive projects</h2>")
    if s.projects or s.month:
        out.append('<div class="cards">')
        out.append(_projects(f"Invoice {inv.id}", "Invoice", s.projects, cur))
        if s.month is not None:
            through = _when(s.month_through, "%Y-%m-%d %H:%M UTC")
            title = f"This month, through {through}"
            out.append(_projects(title, "So far", s.month, cur))
        out.append("</div>")
    else:
        out.append("<p>No project figures: the exporter reads teams only (depth team).</p>")
    out.append("</section>")
    return "".join(out)


def _projects(title: str, column: str, rows: tuple[ProjectRow, ...], cur: str) -> str:
    """One table of the most expensive projects, under its own heading."""
    out = [f'<div class="wide"><h3>{_e(title)}</h3>']
    if not rows:
        out.append("<p>No project has spent yet.</p></div>")
        return "".join(out)
    out.append(
        '<table class="list"><tr><th>#</th><th>Project</th><th>Team</th>'
        f'<th class="r">{_e(column)}</th></tr>'
    )
    for n, p in enumerate(rows, 1):
        out.append(
            f"<tr><td>{n}</td><td>{_e(p.name)}</td><td>{_e(p.team)}</td>"
            f'<td class="r">{_e(money(p.amount, cur))}</td></tr>'
        )
    out.append("</table></div>")
    return "".join(out)


def _headline(view: PageView) -> str:
    s = view.summary
    if s is not None:
        cur, inv = s.invoice.currency, s.invoice
        state = inv.status if inv.status is not None else ("paid" if inv.paid else "not paid")
        text = f"Invoice {inv.id}: {money(inv.total, cur)}, {state.replace('_', ' ')}."
        if s.unbilled is not None:
            since = _when(s.unbilled.since, "%Y-%m-%d")
            text += f" Since {since}: {money(s.unbilled.total, cur)} not yet invoiced."
        return f'<p class="lead">{_e(text)}</p>'
    if view.last_success is None:
        text = "No figures yet: no poll has succeeded since the exporter started."
    else:
        bound = f" (more than {view.staleness_seconds:g} s ago)" if view.staleness_seconds else ""
        text = (
            f"No figures: they are stale. The last successful poll ended at "
            f"{_when(view.last_success)}{bound}, so its figures are no longer shown."
        )
    return f'<p class="lead">{_e(text)}</p>'


PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Northflank spend</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;padding:12px;max-width:960px;color:#111}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}h3{font-size:1em}
.lead{font-size:1.15em}.cards{display:flex;flex-wrap:wrap;gap:0 2.5em}
table{border-collapse:collapse}th,td{text-align:left;padding:2px 10px 2px 0;vertical-align:top}
td{overflow-wrap:anywhere}.list td,.list th{border-bottom:1px solid #ccc}
.r{text-align:right;white-space:nowrap}
.wide{overflow-x:auto}svg{display:block;font-size:13px}svg .n{font-weight:600}
svg text{paint-order:stroke;stroke:#fff;stroke-width:3px}svg .in{stroke:none}
rect.invoice{fill:#1f4e79}rect.unbilled{fill:#9cc3e6;stroke:#1f4e79}.in{fill:#fff}
.in.unbilled{fill:#111}.b{font-weight:400;fill:#a00}
.mark{stroke:#c00;stroke-width:2.5;stroke-dasharray:5 2}.halo{stroke:#fff;stroke-width:5.5}
footer{margin-top:2em;color:#444;font-size:.9em}
@media print{body{max-width:none}a{color:inherit}*{print-color-adjust:exact}}
</style></head>
<body><header><h1>Northflank spend</h1>$headline</header>
<main>$figures
<section><h2>Last poll</h2><p>$status</p></section></main>
<footer>northflank-exporter $version · <a href="/metrics">/metrics</a></footer>
</body></html>
""")


def render_page(view: PageView) -> bytes:
    status = f"Last poll: {view.result} at {_when(view.last_poll)}"
    if view.result == "pending" and view.last_poll is None:
        status = "Last poll: pending (the first poll is under way)"
    if view.requests is not None:
        status += f"; {view.requests} API requests"
    if view.ratelimit_remaining is not None:
        status += f"; rate limit left: {view.ratelimit_remaining:g}"
    if view.last_success is not None and view.result != "ok":
        status += f"; last success at {_when(view.last_success)}"
    return PAGE.substitute(
        headline=_headline(view),
        figures="" if view.summary is None else _figures(view.summary),
        status=_e(status + "."),
        version=_e(view.version),
    ).encode()
