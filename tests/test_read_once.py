"""A finalized invoice read once, and a reserve for the account's other automation, end to
end: the exporter process against the simulator on loopback.

Once an invoice's breakdown is read, later polls read the invoice list (its first page),
the usage and the credit balance, and serve the breakdown as read, with the payment
status from the list entry; the breakdown is read again when the entry changes in
anything but its status, when a new invoice appears, or by age (a pinned invoice: by age
only). No request is sent while the API's window is at or below the reserve: a read
larger than what is left waits for the reset, and is published whole.
"""

from __future__ import annotations

from typing import Any

import pytest

from exporter import metrics as m
from exporter.simulator import HOUR, ManualClock, RequestRecord, Simulator, generate_organisation
from tests.e2e.helpers import cost_series, expected_series
from tests.harness import TOKEN, Exporter, MakeSim, Scrape, api_env, wait_for

pytestmark = pytest.mark.e2e
LIST = "/v1/billing/invoices"


def simulator(make_sim: MakeSim, **options: Any) -> Simulator:
    org = options.pop("org", None) or generate_organisation()
    clock = ManualClock(org.newest_invoice().period_end + 5.5 * HOUR)
    return make_sim(org, clock=clock, contract="current", **options)


def exporter(sim: Simulator, **settings: str) -> Exporter:
    return Exporter(env=api_env(sim.url, TOKEN, poll_interval_seconds="1", **settings))


def breakdown(requests: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in requests if r.path.startswith(LIST + "/")]


def read_figures(scrape: Scrape) -> dict[object, float]:
    """The cost families a read of the breakdown gives (not the usage, budgets, credit)."""
    live = {spec.name for spec in m.LIVE | m.MONTH_FAMILIES}
    return {key: value for key, value in cost_series(scrape).items() if key[0] not in live}


def lists(sim: Simulator) -> int:
    return len([r for r in sim.requests if r.path == LIST])


def polls_after(sim: Simulator, count: int) -> list[RequestRecord]:
    """The requests of the next ``count`` whole polls (from one list request to the one
    after the last), and nothing of the poll under way when asked."""
    sim.clear_requests()
    wait_for(lambda: lists(sim) >= count + 2)
    records = [r for r in sim.requests if r.path != "/v1/auth"]
    starts = [i for i, r in enumerate(records) if r.path == LIST]
    return records[starts[0] : starts[count]]


def test_steady_polls_read_the_list_the_usage_and_the_credit_only(make_sim: MakeSim) -> None:
    sim = simulator(make_sim)
    with exporter(sim) as process:
        first = cost_series(process.wait_ready())
        requests = polls_after(sim, 3)
        later = cost_series(process.scrape())
        logs = process.logs()
    assert first == later == expected_series(sim)
    assert breakdown(requests) == []
    per_poll = 1 + (1 + 4) + 1  # the list's first page, the usage (org, 4 teams), credit
    assert len(requests) == 3 * per_poll
    listed = [r.query for r in requests if r.path == LIST]
    assert listed == [{"removeLegacyFields": "true", "perPage": "100"}] * 3
    usage = [r for r in requests if r.path.endswith("/billing/usage")]
    assert len(usage) == 3 * 5
    assert all(r.query["granularity"] == "total" for r in usage)
    assert "breakdown=kept result=ok duration_seconds=" in logs
    assert f"requests={per_poll} " in logs


def test_a_status_change_is_served_without_a_read(make_sim: MakeSim) -> None:
    sim = simulator(make_sim)
    invoice = sim.org.newest_invoice().id
    with exporter(sim) as process:
        process.wait_ready()
        sim.clear_requests()
        sim.org.set_status(invoice, "paid")
        scrape = process.wait_metric(m.INVOICE_PAID.name, lambda v: v == 1)
        assert scrape.family(m.INVOICE_STATUS.name) == {frozenset({("status", "paid")}): 1}
        sim.org.set_status(invoice, "payment_failed")
        scrape = process.wait_metric(m.INVOICE_PAID.name, lambda v: v == 0)
    assert scrape.family(m.INVOICE_STATUS.name) == {frozenset({("status", "payment_failed")}): 1}
    assert breakdown(sim.requests) == []
    assert cost_series(scrape) == expected_series(sim)


def test_a_price_change_in_the_list_is_read_once_to_the_cent(make_sim: MakeSim) -> None:
    sim = simulator(make_sim)
    invoice = sim.org.newest_invoice().id
    with exporter(sim) as process:
        process.wait_ready()
        wait_for(lambda: lists(sim) >= 3)  # steady polls under way
        sim.clear_requests()
        sim.org.set_resource_price(invoice, "team-2", "api", "service-1", cpu=123456.5)
        want = expected_series(sim)
        where = {
            "currency": "usd", "team": "team-2", "project": "api", "resource_type": "service",
            "resource": "service-1", "resource_name": "Service 1",
        }  # fmt: skip
        price = want[(m.RESOURCE_COST.name, frozenset(where.items()))]
        process.wait_metric(m.RESOURCE_COST.name, lambda v: v == price, **where)
        wait_for(lambda: lists(sim) >= 4)  # and a steady poll after the read
        scrape = process.scrape()
    assert cost_series(scrape) == want  # every figure, to the cent
    unfiltered = [r for r in breakdown(sim.requests) if "teamId" not in r.query]
    assert len(unfiltered) == 1  # read once, then kept


def test_a_new_invoice_is_read_once_and_the_window_restarts(make_sim: MakeSim) -> None:
    sim = simulator(make_sim)
    old_end = sim.org.newest_invoice().period_end
    with exporter(sim) as process:
        process.wait_ready()
        sim.clear_requests()
        new = sim.org.close_period(old_end + 3 * HOUR)
        scrape = process.wait_metric(
            m.INVOICE_INFO.name, lambda v: v == 1, invoice_id=new.id, currency="usd"
        )
        assert scrape.get(m.UNBILLED_SINCE.name) == new.period_end
        wait_for(lambda: lists(sim) >= 4)
        scrape = process.scrape()
    assert cost_series(scrape) == expected_series(sim)
    unfiltered = [r for r in breakdown(sim.requests) if "teamId" not in r.query]
    assert {r.path for r in unfiltered} == {f"{LIST}/{new.id}"}
    assert len(unfiltered) == 1


def test_a_pinned_invoice_is_read_again_by_age_only(make_sim: MakeSim) -> None:
    sim = simulator(make_sim)
    invoice = sim.org.newest_invoice().id
    with exporter(sim, invoice_id=invoice, invoice_refresh_seconds="4") as process:
        first = process.wait_ready()
        sim.clear_requests()
        sim.org.set_resource_price(invoice, "team-1", "web", "job-1", cpu=1.5)  # in the list too
        wait_for(lambda: lists(sim) >= 2, timeout=4)
        assert read_figures(process.scrape()) == read_figures(first)  # not read for the list
        changed = process.wait_metric(
            m.INVOICE_AMOUNT.name,
            lambda v: v != first.get(m.INVOICE_AMOUNT.name, currency="usd"),
            currency="usd",
            timeout=10,
        )
    assert cost_series(changed) == expected_series(sim)  # read again when 4 s old
    unfiltered = [r for r in breakdown(sim.requests) if "teamId" not in r.query]
    assert len(unfiltered) == 1


def test_the_reserve_holds_under_concurrency_8_and_the_read_is_late_but_whole(
    make_sim: MakeSim,
) -> None:
    """130 requests a 3 s window, a reserve of 100: 30 a window for the exporter. The
    first read (44 requests) sends 30, waits for the reset, and goes on: no 429, nothing
    sent at or below the reserve, one publish with every figure."""
    org = generate_organisation(teams=4, projects_per_team=8)
    sim = simulator(make_sim, org=org, rate_limit=130, rate_window_seconds=3)
    settings = {"max_concurrency": "8", "ratelimit_reserve": "100"}
    with exporter(sim, **settings) as process:
        scrape = process.wait_ready(timeout=20)
        logs = process.logs()
    [first_poll] = [line for line in logs.splitlines() if "poll succeeded" in line][:1]
    records = [r for r in sim.requests if r.status is not None]
    assert all(r.status != 429 for r in records)
    windows: list[list[RequestRecord]] = []
    for record in sorted(records, key=lambda r: r.time):  # the simulator's windows
        if not windows or record.time >= windows[-1][0].time + 3:
            windows.append([])
        windows[-1].append(record)
    assert max(len(window) for window in windows) <= 130 - 100
    assert len(windows) >= 2  # it waited for a reset
    assert cost_series(scrape) == expected_series(sim)
    duration = float(first_poll.split("duration_seconds=")[1].split()[0])
    assert duration > 1  # late: the window's reset came inside the first read
    assert "breakdown=read" in first_poll
    waited = scrape.get(m.RATELIMIT_WAIT.sample_name)
    assert waited is not None
    assert 0 < waited <= duration
    assert "at or below the reserve of 100 (NORTHFLANK_RATELIMIT_RESERVE)" in logs
