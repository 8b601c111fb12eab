"""The page at ``/``: escaping, the empty and stale sentences, budgets, sizes, the wiring."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time

import pytest

from exporter.api.client import Client
from exporter.api.model import Credit, Price, Project, Team
from exporter.bodies import Bodies, Published
from exporter.page import NAME_CHARS, TOP_PROJECTS, PageView, _when, render_page, summarise
from exporter.poller import Outcome, Poller
from exporter.settings import Settings
from exporter.simulator import generate_organisation
from exporter.snapshot import (
    InvoiceFigures,
    MonthFigures,
    Snapshot,
    TeamAmount,
    UnbilledFigures,
)
from tests.virtual import FakeApi, VirtualTimeLoop

NOW = 1_764_547_200.0  # 2025-12-01 00:00 UTC
LIMIT = 200 * 1024


def team(tid: str, name: str, total: float | None, projects: int = 0) -> Team:
    made = tuple(
        Project(f"p{n}", f"{name} project {n}", Price(total and total / (n + 2)), ())
        for n in range(projects)
    )
    return Team(tid, name, Price(total), made)


def snapshot(
    *teams: Team,
    budgets: dict[str, float] | None = None,
    unbilled: bool = True,
    invoice_id: str = "inv-2025-11",
    status: str | None = None,
    credit: Credit | None = None,
) -> Snapshot:
    invoice = InvoiceFigures(
        id=invoice_id,
        currency="usd",
        period_start=NOW - 30 * 86400,
        period_end=NOW,
        total=sum(t.price.total or 0 for t in teams) * 1.2,
        subtotal=None,
        discount=None,
        tax_amount=123.45,
        tax_ratio=0.2,
        paid=False,
        status=status,
        line_items=(),
        byoc=None,
        paas=None,
    )
    window = UnbilledFigures(
        since=NOW,
        through=NOW + 7200,
        total=42.5,
        paas=Price(42.5),
        byoc=Price(0.0),
        teams=tuple(TeamAmount(t.id, t.name, 10.25) for t in teams),
    )
    names = {t.id: t.name for t in teams}
    return Snapshot(
        invoice=invoice,
        teams=teams,
        unbilled=window if unbilled else None,
        budgets=tuple(TeamAmount(k, names[k], v) for k, v in (budgets or {}).items()),
        credit=credit,
    )


def page(snap: Snapshot | None, **status: object) -> str:
    fields: dict[str, object] = {"result": "ok", "last_poll": NOW + 60, "last_success": NOW + 60}
    fields.update(status)
    view = PageView("1.2.3", None if snap is None else summarise(snap), **fields)  # type: ignore[arg-type]
    return render_page(view).decode()


def svg(text: str) -> str:
    found = re.search(r"<svg.*</svg>", text, re.S)
    assert found, "no chart"
    return found.group(0)


def no_outside_assets(text: str) -> None:
    assert "<script" not in text.lower()
    for needle in ("src=", "url(", "@import", "http://", "https://", "<link"):
        assert needle not in text
    assert len(text.encode()) < LIMIT


def test_user_strings_are_escaped_everywhere() -> None:
    evil = "<script>\"&'"
    snap = snapshot(team("t1", evil, 100.0, projects=2), budgets={"t1": 50}, invoice_id=evil)
    text = page(snap)
    no_outside_assets(text)
    assert evil not in text
    escaped = "&lt;script&gt;&quot;&amp;&#x27;"
    assert escaped in svg(text)  # the label and its <title>
    assert f"<td>{escaped} project 0</td>" in text
    assert f"Invoice {escaped}:" in text


def test_unicode_names_come_through() -> None:
    text = page(snapshot(team("t1", "Platform Café 日本 🚀", 10.0, projects=1)))
    assert "Platform Café 日本 🚀" in svg(text)
    assert '<meta charset="utf-8">' in text


def test_a_very_long_name_is_cut_in_the_chart_and_whole_in_its_title() -> None:
    name = "x" * 300
    text = page(snapshot(team("t1", name, 10.0, projects=1)))
    chart = svg(text)
    assert f"<title>{name}</title>" in chart
    assert "x" * (NAME_CHARS - 1) + "…" in chart
    assert "x" * (NAME_CHARS + 1) + "<" not in chart.replace(f"<title>{name}</title>", "")
    assert f"<td>{name} project 0</td>" in text  # tables wrap: the whole name


def test_before_the_first_poll_a_sentence_and_no_figures() -> None:
    text = render_page(PageView(version="1.2.3")).decode()
    assert "No figures yet" in text
    assert "Last poll: pending" in text
    assert "USD" not in text
    assert "<svg" not in text
    assert '<a href="/metrics">' in text
    assert "1.2.3" in text
    no_outside_assets(text)


def test_stale_figures_give_a_sentence_and_no_old_numbers() -> None:
    text = page(None, result="http", last_poll=NOW + 900, staleness_seconds=600.0)
    assert "No figures: they are stale" in text
    assert "more than 600 s ago" in text
    assert "Last poll: http at 2025-12-01 00:15:00 UTC" in text
    assert "USD" not in text
    assert "<svg" not in text


def test_a_failed_poll_within_the_bound_keeps_the_figures_and_says_so() -> None:
    text = page(snapshot(team("t1", "Ops", 10.0)), result="timeout", last_poll=NOW + 120)
    assert "invoice 10.00 USD" in text
    assert "Last poll: timeout at 2025-12-01 00:02:00 UTC" in text
    assert "last success at 2025-12-01 00:01:00 UTC" in text


def test_budgets_draw_a_mark_and_say_the_amount() -> None:
    snap = snapshot(
        team("t1", "Over", 500.0), team("t2", "Under", 100.0), team("t3", "None", 50.0),
        budgets={"t1": 400.0, "t2": 1000.0},
    )  # fmt: skip
    chart = svg(page(snap))
    assert chart.count('class="mark"') == 2
    assert "budget 400.00 USD, over" in chart
    assert "budget 1,000.00 USD<" in chart  # under: no "over"
    # the largest amount (the 1000 budget) spans 96 % of the width
    assert 'x1="96.00%"' in chart
    assert 'width="48.00%"' in chart  # Over's 500


def test_one_team() -> None:
    text = page(snapshot(team("t1", "Solo", 1234.5, projects=3), unbilled=False))
    chart = svg(text)
    assert chart.count("<g ") == 1
    assert 'width="96.00%"' in chart
    assert "invoice 1,234.50 USD" in chart
    assert "unbilled" not in chart
    assert "Not yet invoiced" not in text
    assert text.count("<tr><td>") == 3  # its three projects


def test_many_teams_sorted_and_the_ten_top_projects() -> None:
    teams = [team(f"t{n}", f"Team {n}", float(n * 10), projects=5) for n in range(1, 51)]
    text = page(snapshot(*teams))
    chart = svg(text)
    assert chart.count("<g ") == 50
    positions = [chart.index(f"<title>Team {n}</title>") for n in range(50, 0, -1)]
    assert positions == sorted(positions)  # most expensive first
    assert text.count("<tr><td>") == TOP_PROJECTS
    assert "<tr><td>1</td><td>Team 50 project 0</td><td>Team 50</td>" in text
    for n in range(1, 51):
        assert f"invoice {n * 10:,.2f} USD" in chart
    no_outside_assets(text)


def test_a_team_without_a_total_and_depth_team() -> None:
    text = page(snapshot(team("t1", "Unknown", None), team("t2", "", 5.0)))
    chart = svg(text)
    assert "invoice no figure" in chart
    assert "<title>t2</title>" in chart  # no name: the ID
    assert "No project figures" in text


def poll_simulator(
    org_args: tuple[int, int, int], started: float = NOW, **settings: object
) -> list[Published]:
    """One poll of the simulated organisation, in process and virtual time (starting at
    Unix time ``started``); with ``max_staleness_seconds``, then wait past the bound."""
    loop = VirtualTimeLoop()
    api = FakeApi(generate_organisation(*org_args), loop, start=started, rate_limit=1000)
    config = Settings(api_token=api.token, **settings)  # type: ignore[arg-type]
    published: list[Published] = []
    bodies = Bodies("test")

    def publish(outcome: Outcome) -> int:
        published.append(bodies.make(outcome))
        return published[-1].exposition.samples

    async def main() -> None:
        transport = api.transport()
        async with Client("http://api.test", api.token, transport=transport) as client:
            poller = Poller(client, config, publish, clock=loop.time, wall_clock=api.wall_clock)
            assert await poller.poll()
            if config.max_staleness_seconds:
                await asyncio.sleep(config.max_staleness_seconds + 1)

    loop.run(main())
    return published


@pytest.mark.parametrize(
    ("org", "limit"),
    [((4, 3, 1), 16 * 1024), ((10, 50, 4), LIMIT)],
    ids=["demo", "benchmark"],
)
def test_page_size_for_the_demo_and_the_benchmark(org: tuple[int, int, int], limit: int) -> None:
    published = poll_simulator(org, budgets={"*": 300.0})
    body = published[-1].page
    print(f"page for {org}: {len(body)} bytes")
    assert len(body) < limit
    text = body.decode()
    no_outside_assets(text)
    assert svg(text).count("<g ") == org[0]
    assert "Last poll: ok at" in text
    assert "API requests" in text


def test_the_poller_drops_the_page_figures_when_stale() -> None:
    started = time.time()
    published = poll_simulator((2, 1, 1), started, max_staleness_seconds=600)
    fresh, stale = published[-2].page.decode(), published[-1].page.decode()
    assert "Platform Café" in fresh
    assert "USD" in fresh
    assert "rate limit left" in fresh
    assert "No figures: they are stale" in stale
    assert "USD" not in stale
    assert not published[-1].ready
    assert f"Last poll: ok at {time.strftime('%Y-%m-%d', time.gmtime(started))}" in stale


def test_a_time_out_of_the_calendars_range_is_shown_as_a_number() -> None:
    """Found by the property tests: an invoice ending at 1e308 must not break a poll."""
    assert _when(1e308, "%Y") == "1e+308 (Unix time)"
    assert _when(0.0, "%Y") == "1970"


def test_the_invoice_status_and_the_credit_balance_are_shown() -> None:
    credit = Credit("usd", 1234.5, 10.0, 1000.0, 10.0, -42.25, NOW)
    text = page(snapshot(team("t", "T", 10.0), status="payment_failed", credit=credit))
    assert "Invoice inv-2025-11: 12.00 USD, payment failed." in text
    assert "<th>Status</th><td>payment_failed</td>" in text
    assert "<h2>Credit</h2>" in text
    assert "<th>Available</th><td>1,234.50 USD</td>" in text
    assert "<th>Balance</th><td>-42.25 USD</td>" in text
    assert "<th>Synced</th><td>2025-12-01 00:00 UTC</td>" in text
    legacy = page(snapshot(team("t", "T", 10.0)))  # no status, no credit: neither is shown
    assert "not paid." in legacy
    assert "Status" not in legacy
    assert "Credit" not in legacy


def test_this_months_top_projects_beside_the_invoices() -> None:
    """The month's breakdown has teams without names: the invoice's name them; its own
    heading says how far it goes; most expensive first, at most ten."""
    teams = [team(f"t{n}", f"Team {n}", float(n * 10), projects=3) for n in range(1, 6)]
    month_teams = tuple(
        Team(
            f"t{n}",
            "",
            Price(None),
            tuple(Project(f"m{n}-{k}", f"Month <{n}.{k}>", Price(n + k / 10)) for k in range(3)),
        )
        for n in range(1, 6)
    )
    month = MonthFigures(NOW, NOW + 5 * 3600, "usd", month_teams, ("inv-2025-11", NOW, 5))
    snap = dataclasses.replace(snapshot(*teams), month=month)
    text = page(snap)
    assert "<h3>Invoice inv-2025-11</h3>" in text
    assert "<h3>This month, through 2025-12-01 05:00 UTC</h3>" in text
    month_part = text[text.index("This month, through") :]
    assert (
        '<tr><td>1</td><td>Month &lt;5.2&gt;</td><td>Team 5</td><td class="r">5.20 USD'
        in month_part
    )
    assert month_part.count("<tr><td>") == TOP_PROJECTS  # of 15
    assert text.count("<tr><td>") == 2 * TOP_PROJECTS
    no_outside_assets(text)
    # no breakdown of this month: the invoice's table alone
    alone = page(snapshot(*teams))
    assert "This month, through" not in alone
    assert alone.count("<tr><td>") == TOP_PROJECTS
