"""A single-team token end to end: answers that start at the project level.

"Not accepted from a token that can only read one team ... those responses already
cover that team and no other, and start at the project level" (the current pages): the
exporter sends no ``teamId``, takes the team from ``GET /v1/auth`` (its name from
``GET /v1/teams/{id}`` where the token may read it), and serves the same families as for
an organisation. The simulator refuses ``teamId`` from such a token (400).
"""

from __future__ import annotations

from typing import Any

import pytest

from exporter import metrics as m
from exporter.simulator import HOUR, ManualClock, Simulator, generate_organisation
from tests.contracts import major
from tests.e2e.helpers import cost_series, run_once
from tests.harness import TOKEN, Exporter, MakeSim, api_env, parse_exposition, wait_for

pytestmark = pytest.mark.e2e
TEAM = "team-2"


def simulator(make_sim: MakeSim, **options: Any) -> Simulator:
    org = options.pop("org", None) or generate_organisation(teams=3, projects_per_team=2)
    clock = ManualClock(org.newest_invoice().period_end + 3.5 * HOUR)
    return make_sim(org, clock=clock, contract="current", single_team=TEAM, **options)


def team_labels(scrape: Any, family: str) -> set[str]:
    return {dict(labels)["team"] for labels in scrape.family(family)}


def test_a_single_team_token_gives_its_teams_families(make_sim: MakeSim) -> None:
    sim = simulator(make_sim)
    result = run_once(sim)
    scrape = parse_exposition(result.stdout)
    invoice = sim.org.newest_invoice().id
    doc = sim.org.render_invoice(invoice, contract="current", single_team=TEAM)
    name = next(team.name for team in sim.org.teams if team.id == TEAM)
    team_cost = scrape.get(m.TEAM_COST.name, currency="usd", team=TEAM, team_name=name)
    assert team_cost == doc["paas"]["price"]["total"]
    for family in (m.TEAM_COST, m.PROJECT_COST, m.RESOURCE_TYPE_COST, m.RESOURCE_COST):
        assert team_labels(scrape, family.name) == {TEAM}, family.name
    projects = {p["id"]: p for p in doc["paas"]["projects"]}
    for labels, value in scrape.family(m.PROJECT_COST.name).items():
        assert value == projects[dict(labels)["project"]]["price"]["total"]
    resources = scrape.family(m.RESOURCE_COST.name)
    assert len(resources) == 2 * 7  # two projects, a resource of each type
    # what the simulator says of the team's project "web", resource by resource
    web = sim.org.render_invoice(invoice, project_id="web", contract="current", single_team=TEAM)
    for kind in web["paas"]["projects"][0]["resourceTypes"]:
        for res in kind["resources"]:
            key = {
                ("currency", "usd"), ("team", TEAM), ("project", "web"),
                ("resource_type", kind["resourceType"]), ("resource", res["id"]),
                ("resource_name", res["name"]),
            }  # fmt: skip
            assert resources[frozenset(key)] == res["price"]["total"]
    # no teamId anywhere (refused with 400 from such a token); the team from /v1/auth
    assert not [r for r in sim.requests if "teamId" in r.query]
    assert not [r for r in sim.requests if r.path.startswith("/v1/teams/") and "billing" in r.path]
    assert sim.count(path_prefix="/v1/auth") == 1
    assert sim.count(path_prefix=f"/v1/teams/{TEAM}") == 1
    # its unbilled spend: the org-wide answer, which is its own; no team call
    usage = [r for r in sim.requests if r.path.endswith("/billing/usage")]
    assert [r.path for r in usage] == ["/v1/billing/usage"]
    hours = sim.org.render_usage(now=sim.clock(), single_team=TEAM)
    spent = major(sum(h["paasUsage"]["price"]["total"] for h in hours))
    assert scrape.get(m.TEAM_UNBILLED_COST.name, currency="usd", team=TEAM, team_name=name) == (
        pytest.approx(spent, abs=1e-9)
    )
    token = scrape.family(m.TOKEN_INFO.name)
    assert token == {frozenset({("entity_type", "team"), ("entity_id", TEAM)}): 1.0}


def test_without_team_read_the_team_is_named_by_its_id(make_sim: MakeSim) -> None:
    sim = simulator(make_sim, team_read=False)
    scrape = parse_exposition(run_once(sim).stdout)
    assert team_labels(scrape, m.TEAM_COST.name) == {TEAM}
    [labels] = scrape.family(m.TEAM_COST.name)
    assert dict(labels)["team_name"] == TEAM
    assert cost_series(scrape)  # the poll succeeded: a 403 naming the team costs nothing


def test_later_polls_read_by_resource_type_alone_and_the_credit_on_the_team_path(
    make_sim: MakeSim,
) -> None:
    """8 projects and 3 types: by type is cheaper; ``resourceType`` without ``teamId``."""
    org = generate_organisation(2, 8, 1, resource_types=("service", "addon", "job"))
    sim = simulator(make_sim, org=org)
    env = api_env(sim.url, TOKEN, poll_interval_seconds="1", invoice_refresh_seconds="0")
    with Exporter(env=env) as exporter:
        first = cost_series(exporter.wait_ready())
        wait_for(lambda: [r for r in sim.requests if "resourceType" in r.query])
        sim.clear_requests()
        wait_for(lambda: sim.count(path_prefix="/v1/billing/invoices/") >= 4)
        later = exporter.scrape()
    type_calls = [r for r in sim.requests if "resourceType" in r.query]
    assert {r.query["resourceType"] for r in type_calls} == {"service", "addon", "job"}
    assert not [r for r in sim.requests if "teamId" in r.query or "projectId" in r.query]
    assert sim.count(path_prefix=f"/v1/teams/{TEAM}/billing/credit-balance") >= 1
    assert sim.count(path_prefix="/v1/billing/credit-balance") == 0
    assert {k: v for k, v in cost_series(later).items() if "resource" in k[0]} == {
        k: v for k, v in first.items() if "resource" in k[0]
    }
