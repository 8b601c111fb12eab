"""Depth ``resource`` read by resource type where that is cheaper, over real HTTP.

The poller runs in process against the simulator on loopback, poll after poll: the
first reads by project and learns each team's types; later polls read a team by type
when that takes fewer requests (``TeamShape``), check that every project adds up, and
read a project that does not by ``projectId`` in the same poll.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Mapping

import pytest

from exporter import metrics as m
from exporter.api.client import Client
from exporter.bodies import Bodies, Published
from exporter.metrics import COST_NAMES
from exporter.poller import Outcome, Poller
from exporter.settings import Settings
from exporter.simulator import RequestRecord, Simulator, generate_organisation
from tests.harness import parse_exposition

pytestmark = pytest.mark.e2e
TOKEN = "type-mode-token"
THREE_TYPES = ("service", "addon", "job")


class Polls:
    """A poller against ``sim``: each :meth:`poll` returns what it served and requested."""

    def __init__(self, sim: Simulator, **settings: object) -> None:
        self.sim = sim
        self.settings = Settings(
            api_url=sim.url,
            api_token=TOKEN,
            unbilled=False,
            request_budget_per_hour=1_000_000,
            invoice_refresh_seconds=0,  # each poll reads the breakdown again: type mode
            **settings,  # type: ignore[arg-type]
        )
        self.bodies = Bodies("test")
        self.published: list[Published] = []
        self.logs: list[Outcome] = []

    def _publish(self, outcome: Outcome) -> int:
        self.published.append(self.bodies.make(outcome))
        return self.published[-1].exposition.samples

    def run(
        self, count: int, before: Mapping[int, Callable[[], object]] | None = None
    ) -> list[tuple[dict[object, float], list[RequestRecord]]]:
        """``count`` polls by one poller (``before[i]`` runs before poll ``i``, from 0); for
        each, the cost series served and the requests it sent."""

        async def go() -> list[tuple[dict[object, float], list[RequestRecord]]]:
            out = []
            async with Client(self.sim.url, TOKEN) as client:
                poller = Poller(client, self.settings, self._publish)
                for number in range(count):
                    if before and number in before:
                        before[number]()
                    self.sim.clear_requests()
                    assert await poller.poll()
                    out.append((cost_series(self.published[-1]), invoice_requests(self.sim)))
            return out

        return asyncio.run(go())


def invoice_requests(sim: Simulator) -> list[RequestRecord]:
    """The requests of the invoice's breakdown: all but the credit balance (one a poll)."""
    return [r for r in sim.requests if not r.path.endswith("/credit-balance")]


def cost_series(published: Published) -> dict[object, float]:
    scrape = parse_exposition(published.exposition.text.plain.decode())
    return {key: value for key, value in scrape.samples.items() if key[0] in COST_NAMES}


def cost_lines(published: Published) -> list[str]:
    text = published.exposition.text.plain.decode()
    return [line for line in text.splitlines() if line.split("{")[0].split(" ")[0] in COST_NAMES]


def kinds(requests: list[RequestRecord]) -> dict[str, int]:
    out = {"list": 0, "unfiltered": 0, "teamId": 0, "projectId": 0, "resourceType": 0}
    for r in requests:
        if r.path == "/v1/billing/invoices":
            out["list"] += 1
        elif "projectId" in r.query:
            out["projectId"] += 1
        elif "resourceType" in r.query:
            out["resourceType"] += 1
        elif "teamId" in r.query:
            out["teamId"] += 1
        else:
            out["unfiltered"] += 1
    return out


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """3 teams x 8 projects, 3 resource types, 2 resources of each type in each project."""
    org = generate_organisation(3, 8, 2, resource_types=THREE_TYPES)
    with Simulator(org, token=TOKEN) as simulator:
        yield simulator


def test_same_figures_in_both_modes_to_the_cent(sim: Simulator) -> None:
    polls = Polls(sim)
    (by_project, first), (by_type, second) = polls.run(2)
    assert kinds(first)["projectId"] == 3 * 8
    assert kinds(first)["resourceType"] == 0
    assert kinds(second)["resourceType"] == 3 * 3
    assert kinds(second)["projectId"] == 0
    assert by_type == by_project  # every series, every value
    assert cost_lines(polls.published[1]) == cost_lines(polls.published[0])  # byte for byte
    assert len([key for key in by_type if key[0] == m.RESOURCE_COST.name]) == 3 * 8 * 3 * 2


def test_requests_per_poll_follow_the_formula(sim: Simulator) -> None:
    teams, projects, types = 3, 8, len(THREE_TYPES)
    (_, first), (_, second), (_, third) = Polls(sim).run(3)
    assert len(first) == 2 + teams + teams * projects
    steady = 2 + teams * (1 + min(projects, types))
    assert len(second) == len(third) == steady == 2 + 3 * 4


def test_the_log_line_says_what_each_way_cost(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="exporter.poller")
    Polls(sim).run(2)
    lines = [r for r in caplog.records if r.getMessage() == "poll succeeded"]
    fields = [r.fields for r in lines]  # type: ignore[attr-defined]
    assert (fields[0]["by_project"], fields[0]["by_type"], fields[0]["teams_by_type"]) == (24, 0, 0)
    assert (fields[1]["by_project"], fields[1]["by_type"], fields[1]["teams_by_type"]) == (0, 9, 3)
    assert fields[1]["requests"] == 2 + 3 + 9 + 1  # and the credit balance


def test_a_new_type_is_caught_and_exported_exactly(sim: Simulator) -> None:
    invoice = sim.org.newest_invoice()

    def add_two_of_new_types() -> None:
        sim.org.add_resource(invoice.id, "team-2", "api", "harness", "ci-runner", cpu=1234.5)
        sim.org.add_resource(invoice.id, "team-2", "web", "sandbox", "play", memory=0.5)

    # poll 1 reads by type; poll 2 meets the new types; poll 3 knows them
    polls = Polls(sim).run(4, before={2: add_two_of_new_types})
    (series, requests), (later, steady) = polls[2], polls[3]
    # this poll: only the two projects that did not add up get a projectId call
    project_calls = [r for r in requests if "projectId" in r.query]
    assert sorted((r.query["teamId"], r.query["projectId"]) for r in project_calls) == [
        ("team-2", "api"),
        ("team-2", "web"),
    ]
    assert len(requests) == 2 + 3 * (1 + 3) + 2
    key = (m.RESOURCE_COST.name, frozenset({
        ("currency", "usd"), ("team", "team-2"), ("project", "api"),
        ("resource_type", "harness"), ("resource", "ci-runner"), ("resource_name", "ci-runner"),
    }))  # fmt: skip
    assert series[key] == 12.345
    kind = [
        v
        for (name, labels), v in series.items()
        if name == m.RESOURCE_TYPE_COST.name and ("resource_type", "sandbox") in labels
    ]
    assert kind == [0.005]
    # the next poll knows team-2's new types: by type, no projectId call, same figures
    assert not [r for r in steady if "projectId" in r.query]
    team2 = sorted(
        r.query["resourceType"]
        for r in steady
        if r.query.get("teamId") == "team-2" and "resourceType" in r.query
    )
    assert team2 == sorted([*THREE_TYPES, "harness", "sandbox"])
    assert later == series


def test_a_team_with_fewer_projects_than_types_stays_by_project() -> None:
    org = generate_organisation(2, 3, 1)  # 3 projects, 7 types
    with Simulator(org, token=TOKEN) as sim:
        (_, first), (_, second) = Polls(sim).run(2)
    assert kinds(second) == kinds(first)
    assert kinds(second)["projectId"] == 2 * 3
    assert kinds(second)["resourceType"] == 0


def test_a_tie_goes_to_project_calls() -> None:
    org = generate_organisation(1, 3, 1, resource_types=THREE_TYPES)  # 3 projects, 3 types
    with Simulator(org, token=TOKEN) as sim:
        (_, _), (_, second) = Polls(sim).run(2)
    assert kinds(second)["projectId"] == 3
    assert kinds(second)["resourceType"] == 0


def test_a_type_answer_is_paged_and_its_pages_are_counted() -> None:
    """12 projects x 2 resources of each type: 24 resources a type answer, 5 a page (and
    its 12 projects 5 a page, asked alongside the first three resource pages)."""
    org = generate_organisation(2, 12, 2, resource_types=THREE_TYPES)
    with Simulator(org, token=TOKEN, max_page_size=5) as sim:
        polls = Polls(sim)
        (by_project, _), (by_type, second) = polls.run(2)
    type_calls = [r for r in second if "resourceType" in r.query]
    assert len(type_calls) == 2 * 3 * math.ceil(24 / 5)
    assert {r.query.get("resourcesPage", "1") for r in type_calls} == {"1", "2", "3", "4", "5"}
    assert {r.query.get("projectsPage", "1") for r in type_calls} == {"1", "2", "3"}
    assert by_type == by_project
    assert len([k for k in by_type if k[0] == m.RESOURCE_COST.name]) == 2 * 12 * 3 * 2
