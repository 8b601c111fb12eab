"""The current contract's breakdown paging, a page per level (teams, projects,
resources): the union of the pages is the whole answer, each level takes exactly the
pages it needs, the ``pagination`` objects, the ancestors rule, the parameters.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from exporter.simulator import ManualClock, Organisation, generate_organisation
from tests.simulator.helpers import (
    CURRENT,
    HOUR,
    LEVELS,
    NOW,
    body,
    canonical,
    error_of,
    level_pages,
    merge_pages,
    newest,
    period_end,
    serve,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator

REPEATED = ("id", "period", "currency", "status", "byoc", "lineItems", "subTotal", "tax", "total")


@pytest.fixture
def org() -> Organisation:
    return generate_organisation(teams=5, projects_per_team=3, now=NOW)


def level_counts(paas: dict[str, Any]) -> dict[str, int]:
    """How many entries each present level of a whole answer has."""
    tops = paas["teams"] if "teams" in paas else [{"projects": paas["projects"]}]
    counts = {"teams": len(tops)} if "teams" in paas else {}
    projects = [p for t in tops for p in t.get("projects", ())]
    if any("projects" in t for t in tops):
        counts["projects"] = len(projects)
    groups = [g for p in projects for g in p.get("resourceTypes", ())]
    if groups:
        counts["resources"] = sum(len(g["resources"]) for g in groups)
    return counts


QUERIES: list[dict[str, str]] = [
    {},
    {"teamId": "team-2"},
    {"teamId": "team-2", "projectId": "api"},
    {"teamId": "team-3", "resourceType": "service"},
    {"projectId": "web"},
    {"resourceType": "volume"},
]


@pytest.mark.parametrize("query", QUERIES)
def test_the_union_of_each_levels_pages_is_the_whole(
    org: Organisation, query: dict[str, str]
) -> None:
    invoice_id = newest(org)
    path = f"/v1/billing/invoices/{invoice_id}"
    whole = org.render_invoice(
        invoice_id,
        team_id=query.get("teamId"),
        project_id=query.get("projectId"),
        resource_type=query.get("resourceType"),
        contract="current",
    )
    counts = level_counts(whole["paas"])
    with serve(org, page_size=2) as (_, c):
        pages = []
        for level in LEVELS:
            if level not in counts:
                continue
            mine = level_pages(c, path, level, 2, **CURRENT, **query)
            assert len(mine) == max(1, math.ceil(counts[level] / 2)), level
            assert sum(p["pagination"][level]["count"] for p in mine) == counts[level]
            assert [p["pagination"][level]["hasNextPage"] for p in mine] == [True] * (
                len(mine) - 1
            ) + [False]
            pages += mine
        for page in pages:
            assert set(page["pagination"]) == set(counts)  # an object per present level
            for key in REPEATED:
                assert page["data"].get(key) == whole.get(key)
            assert page["data"]["paas"]["price"] == whole["paas"]["price"]
        assert merge_pages(pages, "teams") == canonical(whole["paas"]["teams"])
        unpaged = {f"{level}PerPage": "100" for level in LEVELS}
        assert body(c.get(path, params={**CURRENT, **query, **unpaged}))["data"] == whole


def test_the_ancestors_of_a_kept_entry_come_with_it() -> None:
    org = generate_organisation(teams=4, projects_per_team=3, now=NOW)
    invoice_id = newest(org)
    whole = org.render_invoice(invoice_id, project_id="web", contract="current")
    path = f"/v1/billing/invoices/{invoice_id}"
    sizes = {"teamsPerPage": "2", "projectsPerPage": "2", "resourcesPerPage": "2"}
    with serve(org) as (_, c):
        page = body(c.get(path, params={**CURRENT, "projectId": "web", **sizes, "teamsPage": "2"}))
    teams = {t["id"]: t for t in page["data"]["paas"]["teams"]}
    full = {t["id"]: t for t in whole["paas"]["teams"]}
    assert list(teams) == ["team-1", "team-2", "team-3", "team-4"]
    for team_id in teams:  # whole prices, kept or only an ancestor
        assert teams[team_id]["price"] == full[team_id]["price"]
    assert teams["team-3"]["projects"] == teams["team-4"]["projects"] == []  # none in window
    (web2,) = teams["team-2"]["projects"]  # projects 1 and 2: team-1's and team-2's web
    assert web2["resourceTypes"] == []  # its resources are beyond the resources window
    assert web2["price"] == full["team-2"]["projects"][0]["price"]
    (web1,) = teams["team-1"]["projects"]
    kept = [(g["resourceType"], r["id"]) for g in web1["resourceTypes"] for r in g["resources"]]
    assert kept == [("job", "job-1"), ("service", "service-1")]
    full_groups = {g["resourceType"]: g for g in full["team-1"]["projects"][0]["resourceTypes"]}
    for group in web1["resourceTypes"]:
        assert group["price"] == full_groups[group["resourceType"]]["price"]
    assert page["pagination"] == {
        "teams": {"hasNextPage": False, "count": 2},
        "projects": {"hasNextPage": True, "count": 2},
        "resources": {"hasNextPage": True, "count": 2},
    }

    # resources page 4 (the 7th and 8th: team-1's last, team-2's first): their project
    # and team come along, projects page 1 stays
    deep = {**CURRENT, "projectId": "web", **sizes, "resourcesPage": "4", "teamsPage": "9"}
    with serve(org) as (_, c):
        data = body(c.get(path, params=deep))
    teams = {t["id"]: t for t in data["data"]["paas"]["teams"]}
    assert list(teams) == ["team-1", "team-2"]
    pairs = [
        (t, g["resourceType"], r["id"])
        for t, team in teams.items()
        for p in team["projects"]
        for g in p["resourceTypes"]
        for r in g["resources"]
    ]
    assert pairs == [("team-1", "external-addon", "external-addon-1"), ("team-2", "job", "job-1")]
    assert data["pagination"]["teams"] == {"hasNextPage": False, "count": 0}


def test_level_parameters() -> None:
    org = generate_organisation(teams=5, projects_per_team=3, now=NOW)
    path = f"/v1/billing/invoices/{newest(org)}"
    with serve(org, page_size=2, max_page_size=3) as (_, c):
        for name, value in (
            ("teamsPage", "0"),
            ("teamsPage", "x"),
            ("teamsPerPage", "0"),
            ("teamsPerPage", "two"),
        ):
            refused = c.get(path, params={**CURRENT, name: value})
            assert refused.status_code == 400, (name, value)
            assert name in error_of(refused)["message"]
        default = body(c.get(path, params=CURRENT))
        assert default["pagination"] == {"teams": {"hasNextPage": True, "count": 2}}
        capped = body(c.get(path, params={**CURRENT, "teamsPerPage": "1000"}))
        assert capped["pagination"]["teams"] == {"hasNextPage": True, "count": 3}
        beyond = body(c.get(path, params={**CURRENT, "teamsPage": "7"}))
        assert beyond["data"]["paas"]["teams"] == []
        assert beyond["pagination"] == {"teams": {"hasNextPage": False, "count": 0}}
        absent = body(c.get(path, params={**CURRENT, "projectsPage": "x"}))  # no such level
        assert absent == default


def test_single_team_and_usage_hour_pages() -> None:
    org = generate_organisation(teams=3, projects_per_team=5, now=NOW)
    invoice_id = newest(org)
    clock = ManualClock(period_end(org) + 3.5 * HOUR)
    hour = int(period_end(org)) + HOUR
    with serve(org, clock=clock, single_team="team-3", contract="current") as (_, c):
        path = f"/v1/billing/invoices/{invoice_id}"
        pages = level_pages(c, path, "projects", 2)
        assert [p["pagination"] for p in pages] == [
            {"projects": {"hasNextPage": True, "count": 2}},
            {"projects": {"hasNextPage": True, "count": 2}},
            {"projects": {"hasNextPage": False, "count": 1}},
        ]
        whole = org.render_invoice(invoice_id, contract="current", single_team="team-3")
        assert merge_pages(pages, "projects") == canonical(whole["paas"]["projects"])
        deep = level_pages(c, path, "resources", 2, projectId="api")
        assert len(deep) == 4  # seven resources
        whole_api = org.render_invoice(
            invoice_id, project_id="api", contract="current", single_team="team-3"
        )
        assert merge_pages(deep, "projects") == canonical(whole_api["paas"]["projects"])

        usage_path = f"/v1/billing/usage/{hour}"
        hour_pages = level_pages(c, usage_path, "projects", 2)
        assert len(hour_pages) == 3
        whole_hour = org.render_usage_hour(
            hour, now=clock(), contract="current", single_team="team-3"
        )
        assert merge_pages(hour_pages, "projects") == canonical(whole_hour["paas"]["projects"])
        for page in hour_pages:
            assert page["data"]["byoc"] == whole_hour["byoc"]
    with serve(org, clock=clock, contract="current") as (_, c):
        pages = level_pages(c, f"/v1/billing/usage/{hour}", "teams", 2)
        whole_hour = org.render_usage_hour(hour, now=clock(), contract="current")
        assert len(pages) == 2
        assert merge_pages(pages, "teams") == canonical(whole_hour["paas"]["teams"])
