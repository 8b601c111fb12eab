"""The exporter's figures and its requests per poll, over real HTTP against the simulator.

Expected figures come from the simulator's own views of its organisation (cents / 100),
never from the exporter's code; request counts are the reference page's, and the credit
balance (``CREDIT``: one request, with every poll that reads the invoice list).
"""

from __future__ import annotations

import pytest

from exporter import metrics as m
from exporter.simulator import Simulator, generate_organisation
from tests.e2e.helpers import cost_series, expected_series, exporter_env, run_once
from tests.harness import TOKEN, Exporter, billing_requests, parse_exposition

pytestmark = pytest.mark.e2e
CREDIT = 1  # GET /v1/billing/credit-balance, with every poll that reads the list


# --------------------------------------------------------------------------- values


def test_every_series_equals_the_simulators_cents_over_100(sim: Simulator) -> None:
    with Exporter(env=exporter_env(sim)) as exporter:
        scrape = exporter.wait_ready()
    expected = expected_series(sim)
    got = cost_series(scrape)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    assert len(got) > 500  # the demo organisation, every resource type


def test_team_total_comes_from_the_unfiltered_call_not_a_slice(sim: Simulator) -> None:
    result = run_once(sim)
    assert result.returncode == 0, result.stderr
    scrape = parse_exposition(result.stdout)
    inv = sim.org.newest_invoice().id
    team = sim.org.render_invoice(inv)["paasUsage"]["teams"][0]
    slice_ = sim.org.render_invoice(inv, team_id=team["id"], project_id="web")
    slice_total = slice_["paasUsage"]["teams"][0]["price"]["total"]
    assert slice_total != team["price"]["total"]  # the simulator slices, as the page says
    served = scrape.get(m.TEAM_COST.name, currency="usd", team=team["id"], team_name=team["name"])
    assert served == team["price"]["total"] / 100
    paas = scrape.get(m.PAAS_COST.name, currency="usd")
    assert paas == sim.org.render_invoice(inv)["paasUsage"]["price"]["total"] / 100


def test_the_newest_invoice_by_period_end_is_polled(sim: Simulator) -> None:
    listed = sim.org.render_invoice_summaries()
    newest = max(listed, key=lambda inv: inv["period"]["end"])
    assert listed[0]["id"] != newest["id"]  # the list is not in date order
    result = run_once(sim)
    scrape = parse_exposition(result.stdout)
    assert scrape.get(m.INVOICE_INFO.name, invoice_id=newest["id"], currency="usd") == 1


def test_a_pinned_invoice_is_polled_without_listing(sim: Simulator) -> None:
    older = sim.org.render_invoice_summaries()
    pinned = min(older, key=lambda inv: inv["period"]["end"])["id"]
    result = run_once(sim, invoice_id=pinned, unbilled="false")
    scrape = parse_exposition(result.stdout)
    assert scrape.get(m.INVOICE_INFO.name, invoice_id=pinned, currency="usd") == 1
    assert sim.count(path_prefix="/v1/billing/invoices", query_has=None) == 17
    assert not [r for r in sim.requests if r.path == "/v1/billing/invoices"]


@pytest.mark.parametrize(
    ("depth", "pinned", "expected"),
    [
        ("team", False, 2 + CREDIT),
        ("team", True, 1),
        ("project", False, 2 + 4 + CREDIT),
        ("project", True, 1 + 4),
        ("resource", False, 2 + 4 + 12 + CREDIT),
        ("resource", True, 1 + 4 + 12),
    ],
)
def test_requests_per_poll_by_depth(
    sim: Simulator, depth: str, pinned: bool, expected: int
) -> None:
    overrides = {"depth": depth, "unbilled": "false"}  # the reference page's minimum
    if pinned:
        overrides["invoice_id"] = sim.org.newest_invoice().id
    result = run_once(sim, **overrides)
    assert result.returncode == 0, result.stderr
    assert len(billing_requests(sim)) == expected
    team_calls = [r for r in sim.requests if "teamId" in r.query and "projectId" not in r.query]
    project_calls = [r for r in sim.requests if "projectId" in r.query]
    assert len(team_calls) == (4 if depth != "team" else 0)
    assert len(project_calls) == (12 if depth == "resource" else 0)
    assert all(r.query.get("teamId") for r in project_calls)  # project IDs repeat across teams
    assert f"requests={expected} " in result.stderr


@pytest.mark.parametrize("pinned", [False, True])
def test_unbilled_usage_costs_one_call_plus_one_per_team(sim: Simulator, pinned: bool) -> None:
    overrides = {"invoice_id": sim.org.newest_invoice().id} if pinned else {}
    result = run_once(sim, **overrides)
    assert result.returncode == 0, result.stderr
    usage = [r for r in sim.requests if r.path.endswith("/billing/usage")]
    assert len(usage) == 1 + 4
    assert all(r.query["granularity"] == "total" for r in usage)  # the window, summed by the API
    # the list call (and so the credit balance) is made even when pinned
    assert len(billing_requests(sim)) == 2 + 4 + 12 + 5 + CREDIT


def test_a_one_team_invoice_needs_no_team_call() -> None:
    with Simulator(generate_organisation(teams=1), token=TOKEN) as sim:
        result = run_once(sim, unbilled="false")
        assert result.returncode == 0, result.stderr
        assert len(billing_requests(sim)) == 2 + 3 + CREDIT
        assert not [r for r in sim.requests if "teamId" in r.query and "projectId" not in r.query]
        scrape = parse_exposition(result.stdout)
    assert len(scrape.family(m.PROJECT_COST.name)) == 3
    assert len(scrape.family(m.RESOURCE_TYPE_COST.name)) == 3 * 7


def test_depth_team_exports_no_projects_even_when_the_answer_holds_them() -> None:
    with Simulator(generate_organisation(teams=1), token=TOKEN) as sim:
        result = run_once(sim, unbilled="false", depth="team")
        assert result.returncode == 0, result.stderr
    scrape = parse_exposition(result.stdout)
    assert len(scrape.family(m.TEAM_COST.name)) == 1
    assert scrape.family(m.PROJECT_COST.name) == {}


def test_teams_setting_limits_the_breakdown(sim: Simulator) -> None:
    result = run_once(sim, teams="team-2,team-4")
    assert result.returncode == 0, result.stderr
    # usage: org-wide and the two teams
    assert len(billing_requests(sim)) == 2 + 2 + 6 + 1 + 2 + CREDIT
    scrape = parse_exposition(result.stdout)
    teams = {dict(labels)["team"] for labels in scrape.family(m.TEAM_COST.name)}
    assert teams == {"team-2", "team-4"}
    assert {dict(lb)["team"] for lb in scrape.family(m.RESOURCE_COST.name)} == teams
    assert scrape.get(m.PAAS_COST.name, currency="usd") is not None  # invoice-wide stays


def test_paged_answers_are_followed() -> None:
    org = generate_organisation(teams=5, projects_per_team=3, resources_per_type=1)
    with Simulator(org, token=TOKEN, page_size=2, max_page_size=2) as sim:
        result = run_once(sim, unbilled="false")
        assert result.returncode == 0, result.stderr
        scrape = parse_exposition(result.stdout)
        pages = ("cursor", "teamsPage", "projectsPage", "resourcesPage")
        paged = [r for r in sim.requests if any(key in r.query for key in pages)]
    assert len(scrape.family(m.TEAM_COST.name)) == 5
    assert len(scrape.family(m.PROJECT_COST.name)) == 15
    assert len(scrape.family(m.RESOURCE_TYPE_COST.name)) == 15 * 7
    # the newest-first list's first page; 5 teams -> 3; 3 projects -> 2 per team; 7
    # resource types -> 4
    assert len(billing_requests(sim)) == 1 + 3 + 5 * 2 + 15 * 4 + CREDIT
    assert len(paged) == 2 + 5 * 1 + 15 * 3
