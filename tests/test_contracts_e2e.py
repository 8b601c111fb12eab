"""Both billing contracts end to end: the exporter process against the simulator serving
one organisation in the current contract, in the legacy one (pinned: it ignores
``removeLegacyFields``), and as a legacy account that honours ``removeLegacyFields``.

The same organisation gives the same cost samples whichever contract it answered in
(one golden file each: ``tests/golden/contract-current.prom`` and
``contract-legacy.prom``, equal but for what only the current contract has), a current
amount is never divided by 100, and an answer in neither contract, or answers of one
poll in two, publish nothing. ``UPDATE_GOLDEN=1`` rewrites the golden files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from exporter import metrics as m
from exporter.simulator import HOUR, ManualClock, Organisation, Simulator, generate_organisation
from tests.contracts import ONLY_CURRENT, cost_lines
from tests.e2e.helpers import cost_series, expected_series, run_once
from tests.harness import TOKEN, Exporter, MakeSim, api_env, parse_exposition, wait_for

pytestmark = pytest.mark.e2e
GOLDEN = Path(__file__).parent / "golden"
NOW = 1_796_083_200.0  # 2026-12-01T00:00:00Z: the organisation's newest invoice ends here


def organisation() -> Organisation:
    """Two teams of two projects, every resource type, fractional cents: fixed figures."""
    return generate_organisation(teams=2, projects_per_team=2, now=NOW, fractional_cents=True)


def simulator(make_sim: MakeSim, contract: str, **options: Any) -> Simulator:
    """``contract``'s simulator of :func:`organisation`, 5.5 hours after its newest invoice."""
    org = options.pop("org", None) or organisation()
    clock = ManualClock(org.newest_invoice().period_end + 5.5 * HOUR)
    return make_sim(org, clock=clock, contract=contract, **options)


def cost_part(text: str) -> str:
    """The cost families of an exposition, headers and samples (no self-metrics)."""
    keep = []
    for line in text.splitlines(keepends=True):
        name = line.split(" ")[2] if line.startswith("# ") else line.split("{")[0].split(" ")[0]
        if name in m.COST_NAMES:
            keep.append(line)
    return "".join(keep)


@pytest.mark.parametrize("contract", ["current", "legacy"])
def test_the_golden_cost_families_of_each_contract(make_sim: MakeSim, contract: str) -> None:
    sim = simulator(make_sim, "current" if contract == "current" else "legacy-pinned")
    result = run_once(sim)
    body = cost_part(result.stdout)
    golden = GOLDEN / f"contract-{contract}.prom"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(body)
    assert body == golden.read_text()
    scrape = parse_exposition(result.stdout)
    assert scrape.get(m.API_CONTRACT.name, contract=contract) == 1
    assert f"reading the {contract} billing contract" in result.stderr


def test_both_golden_files_hold_the_same_cost_samples() -> None:
    current = cost_lines((GOLDEN / "contract-current.prom").read_text())
    legacy = cost_lines((GOLDEN / "contract-legacy.prom").read_text())
    assert {k: v for k, v in current.items() if k not in ONLY_CURRENT} == legacy
    assert set(current) - set(legacy) == ONLY_CURRENT
    assert sum(map(len, legacy.values())) > 200  # every level, every dimension


@pytest.mark.parametrize(
    ("mode", "read"),
    [("current", "current"), ("legacy", "current"), ("legacy-pinned", "legacy")],
    ids=["current", "legacy-honouring-removeLegacyFields", "legacy-pinned"],
)
def test_every_series_equals_the_simulators_in_each_mode(
    make_sim: MakeSim, mode: str, read: str
) -> None:
    """A legacy account asked with ``removeLegacyFields=true`` answers the current
    contract; one pinned to the legacy contract is read as legacy: the same figures."""
    sim = simulator(make_sim, mode)
    scrape = parse_exposition(run_once(sim).stdout)
    assert cost_series(scrape) == pytest.approx(expected_series(sim, read), abs=0)
    assert scrape.get(m.API_CONTRACT.name, contract=read) == 1
    billing = [r for r in sim.requests if r.path.startswith("/v1/billing")]
    assert billing
    assert all(r.query.get("removeLegacyFields") == "true" for r in billing)


def test_a_current_amount_is_never_divided_by_100(make_sim: MakeSim) -> None:
    sim = simulator(make_sim, "current")
    doc = sim.org.render_invoice(sim.org.newest_invoice().id, contract="current")
    scrape = parse_exposition(run_once(sim).stdout)
    assert scrape.get(m.INVOICE_AMOUNT.name, currency="usd") == doc["total"]
    assert scrape.get(m.PAAS_COST.name, currency="usd") == doc["paas"]["price"]["total"]
    assert doc["total"] > 1000  # major units: a hundred times the cents would be obvious


def test_the_contract_setting_refuses_the_other_contract(make_sim: MakeSim) -> None:
    sim = simulator(make_sim, "legacy-pinned")
    result = run_once(sim, 1, api_contract="current")
    assert "a legacy-contract answer, and NORTHFLANK_API_CONTRACT is current" in result.stderr
    legacy_only = simulator(make_sim, "legacy")
    result = run_once(legacy_only, 0, api_contract="legacy")  # no removeLegacyFields: legacy
    assert all("removeLegacyFields" not in r.query for r in legacy_only.requests)
    assert parse_exposition(result.stdout).get(m.API_CONTRACT.name, contract="legacy") == 1


# --------------------------------------------------------------------------- neither, or mixed


def test_an_answer_in_neither_contract_publishes_nothing(make_sim: MakeSim) -> None:
    sim = simulator(make_sim, "current")
    secret = "Zanzibar Ledger 4711"
    body = {"data": {"id": sim.org.newest_invoice().id, "currency": "usd", "name": secret}}
    sim.faults.fail(
        200, count=10_000, body=json.dumps(body), match=lambda path, q: "/invoices/" in path
    )
    with Exporter(env=api_env(sim.url, TOKEN)) as exporter:
        wait_for(lambda: "poll failed" in exporter.logs())
        scrape = exporter.scrape()
        logs = exporter.logs()
    assert scrape.get(m.UP.name) == 0
    assert scrape.get(m.POLL_ERRORS.sample_name, reason="invalid_response") >= 1  # type: ignore[operator]
    assert cost_series(scrape) == {}
    [line] = [line for line in logs.splitlines() if "poll failed" in line][:1]
    assert (
        "get_invoice: an answer in neither billing contract (keys of data: currency, id, name)"
        in line
    )
    assert secret not in logs


def test_answers_of_one_poll_in_two_contracts_publish_nothing(make_sim: MakeSim) -> None:
    sim = simulator(make_sim, "current", endpoint_contracts={"get_invoice": "legacy-pinned"})
    with Exporter(env=api_env(sim.url, TOKEN)) as exporter:
        wait_for(lambda: "poll failed" in exporter.logs())
        scrape = exporter.scrape()
        logs = exporter.logs()
    assert scrape.get(m.UP.name) == 0
    assert cost_series(scrape) == {}
    assert (
        "get_invoice: answers in two billing contracts in one poll: this one legacy, "
        "earlier ones current" in logs
    )


# --------------------------------------------------------------------------- status and credit


@pytest.mark.parametrize(
    ("status", "paid"), [("paid", 1.0), ("open", 0.0), ("payment_failed", 0.0)]
)
def test_the_invoice_status_and_paid(make_sim: MakeSim, status: str, paid: float) -> None:
    sim = simulator(make_sim, "current")
    sim.org.set_status(sim.org.newest_invoice().id, status)
    scrape = parse_exposition(run_once(sim).stdout)
    assert scrape.family(m.INVOICE_STATUS.name) == {frozenset({("status", status)}): 1.0}
    assert scrape.get(m.INVOICE_PAID.name) == paid


def test_the_credit_balance_in_the_current_contract(make_sim: MakeSim) -> None:
    sim = simulator(make_sim, "current")
    scrape = parse_exposition(run_once(sim).stdout)
    expected = {
        key: value
        for key, value in expected_series(sim, "current").items()
        if key[0].startswith(("northflank_credit", "northflank_customer"))
    }
    assert len(expected) == 6
    assert {k: v for k, v in cost_series(scrape).items() if k in expected} == expected
    assert [r.path for r in sim.requests].count("/v1/billing/credit-balance") == 1


def test_a_legacy_account_has_no_credit_balance_and_says_so_once(make_sim: MakeSim) -> None:
    sim = simulator(make_sim, "legacy-pinned")
    with Exporter(env=api_env(sim.url, TOKEN)) as exporter:
        exporter.wait_ready()
        wait_for(lambda: len([r for r in sim.requests if r.path == "/v1/billing/invoices"]) >= 3)
        scrape = exporter.scrape()
        logs = exporter.logs()
    assert scrape.get(m.UP.name) == 1
    assert not [k for k in cost_series(scrape) if k[0].startswith("northflank_credit")]
    assert sim.count(path_prefix="/v1/billing/credit-balance") == 1  # asked again in a day
    assert logs.count("no credit balance (GET /v1/billing/credit-balance: 404)") == 1
    assert "WARNING" not in "".join(line for line in logs.splitlines() if "credit" in line)


# --------------------------------------------------------------------------- paging


def test_each_level_paged_at_two_a_page_to_the_cent(make_sim: MakeSim) -> None:
    """3 invoices, 3 teams, 3 projects a team, 7 resources a project, 2 a page: exactly
    the pages each level needs, and every figure to the cent."""
    org = generate_organisation(teams=3, projects_per_team=3, now=NOW, fractional_cents=True)
    sim = simulator(make_sim, "current", org=org, page_size=2, max_page_size=2)
    scrape = parse_exposition(run_once(sim).stdout)
    assert cost_series(scrape) == expected_series(sim, "current")
    billing = [r for r in sim.requests if r.path != "/v1/auth"]
    by_kind: dict[str, list[dict[str, str]]] = {}
    for record in billing:
        kind = record.path.split("/")[-1] if "invoices/" not in record.path else "breakdown"
        by_kind.setdefault(kind, []).append(record.query)
    assert len(by_kind["invoices"]) == 1  # 3 invoices, newest first: the first page holds it
    breakdown = by_kind["breakdown"]
    unfiltered = [q for q in breakdown if "teamId" not in q]
    assert [q.get("teamsPage") for q in unfiltered] == [None, "2"]  # 3 teams
    team_calls = [q for q in breakdown if "teamId" in q and "projectId" not in q]
    assert sorted(q.get("projectsPage") or "1" for q in team_calls) == ["1"] * 3 + ["2"] * 3
    project_calls = [q for q in breakdown if "projectId" in q]
    assert sorted(q.get("resourcesPage") or "1" for q in project_calls) == sorted("1234" * 9)
    assert not [q for q in project_calls if "projectsPage" in q or "teamsPage" in q]
    assert len(by_kind["usage"]) == 1 + 3  # the window's sums: one entry each, no pages
    assert len(by_kind["credit-balance"]) == 1
    assert len(billing) == 1 + 2 + 3 * 2 + 9 * 4 + 4 + 1


def test_a_legacy_account_paged_at_two_a_page_to_the_cent(make_sim: MakeSim) -> None:
    org = generate_organisation(teams=3, projects_per_team=3, now=NOW, fractional_cents=True)
    sim = simulator(make_sim, "legacy-pinned", org=org, page_size=2, max_page_size=2)
    scrape = parse_exposition(run_once(sim).stdout)
    assert cost_series(scrape) == expected_series(sim, "legacy")
    # pinned and without usage, the first request is the breakdown's, asked in the current
    # contract's parameters: its legacy pages came at the server's own size, so it is asked
    # again from page 1 in the legacy ones, and every later call in them
    sim.clear_requests()
    pinned = sim.org.newest_invoice().id
    scrape = parse_exposition(run_once(sim, invoice_id=pinned, unbilled="false").stdout)
    assert scrape.get(m.TEAM_COST.name, currency="usd", team="team-1", team_name="Platform Café")
    breakdown = [r.query for r in sim.requests if "/invoices/" in r.path]
    assert [("teamsPerPage" in q, q.get("per_page"), q.get("page")) for q in breakdown[:3]] == [
        (True, None, None),
        (False, "100", None),
        (False, "100", "2"),
    ]
    assert all("per_page" in q and "teamsPerPage" not in q for q in breakdown[1:])
