"""The current contract's pages per level, and an answer in the other contract than the
one asked for, through the billing endpoints, on httpx.MockTransport.

A current breakdown pages each level (``teams``, ``projects``, ``resources``) with its
own ``*Page``; every later request asks the next page of each level still open, so a
call costs as many requests as its longest level has pages. A first page in the other
contract is asked again in that contract's parameters where its paging needs it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from exporter.api.contract import Contracts
from exporter.api.errors import InvalidResponseError
from exporter.api.paging import MAX_PAGES
from tests.client_helpers import ok, run_client

CAP = 2  # the fake server's largest page, whatever is asked


def window(items: list[Any], query: dict[str, str], level: str) -> tuple[list[Any], bool]:
    page = int(query.get(f"{level}Page", "1"))
    size = min(CAP, int(query.get(f"{level}PerPage", "50")))
    start = (page - 1) * size
    return items[start : start + size], start + size < len(items)


def current_team(projects: int, resources: int) -> Any:
    """A ``teamId`` + ``projectId``-like answer: one team, ``projects`` projects, and
    ``resources`` resources across them (the resources level counts across projects)."""
    seen: list[dict[str, str]] = []
    all_projects = [f"p{i}" for i in range(projects)]
    all_resources = [(f"p{i % projects}", f"r{i}") for i in range(resources)]

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        seen.append(query)
        kept, more_projects = window(all_projects, query, "projects")
        shown, more_resources = window(all_resources, query, "resources")
        listed = list(dict.fromkeys([*kept, *(p for p, _ in shown)]))  # with ancestors
        doc = {
            "id": "inv-1",
            "status": "open",
            "total": 12.5,
            "paas": {
                "price": {"total": 10},
                "teams": [
                    {
                        "id": "t",
                        "price": {"total": 10},
                        "projects": [
                            {
                                "id": p,
                                "price": {"total": 1},
                                "resourceTypes": [
                                    {
                                        "resourceType": "service",
                                        "resources": [
                                            {"id": r, "price": {"total": 0.5}}
                                            for q, r in shown
                                            if q == p
                                        ],
                                    }
                                ],
                            }
                            for p in listed
                        ],
                    }
                ],
            },
        }
        pagination = {
            "projects": {"hasNextPage": more_projects, "count": len(kept)},
            "resources": {"hasNextPage": more_resources, "count": len(shown)},
        }
        return ok(doc, pagination=pagination)

    return handler, seen


def test_levels_are_paged_together_until_the_longest_ends() -> None:
    handler, seen = current_team(projects=3, resources=7)
    invoice, client = run_client(handler, lambda b: b.invoice("inv-1", team_id="t"))
    (team,) = invoice.teams
    assert [p.id for p in team.projects] == ["p0", "p1", "p2"]
    found = sorted(r.id for p in team.projects for k in p.resource_types for r in k.resources)
    assert found == sorted(f"r{i}" for i in range(7))
    # 7 resources at 2 a page: 4 pages; 3 projects: 2 pages, asked alongside the first two
    assert [(q.get("projectsPage"), q.get("resourcesPage")) for q in seen] == [
        (None, None),
        ("2", "2"),
        (None, "3"),
        (None, "4"),
    ]
    assert all(q["removeLegacyFields"] == "true" for q in seen)
    assert all(q[f"{level}PerPage"] == "100" for q in seen for level in ("teams", "projects"))
    assert client.stats.requests == {("get_invoice", "200"): 4}
    assert invoice.total == 12.5  # what every page repeats counts once


def test_a_level_the_server_says_nothing_of_ends_on_a_short_page() -> None:
    """No ``pagination`` at all: a page of 100 asks for more, a shorter one is the last;
    an empty page after a full one ends the level without failing."""
    seen: list[dict[str, str]] = []
    teams = [{"id": f"t{i}", "price": {"total": 1}} for i in range(150)]

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        seen.append(query)
        page = int(query.get("teamsPage", "1"))
        return ok(
            {"id": "i", "status": "paid", "paas": {"teams": teams[(page - 1) * 100 : page * 100]}}
        )

    invoice, _ = run_client(handler, lambda b: b.invoice("i"))
    assert len(invoice.teams) == 150
    assert [q.get("teamsPage") for q in seen] == [None, "2"]

    seen.clear()
    teams = teams[:100]  # exactly one full page: the next one is empty
    invoice, _ = run_client(handler, lambda b: b.invoice("i"))
    assert len(invoice.teams) == 100
    assert [q.get("teamsPage") for q in seen] == [None, "2"]


def test_a_level_said_to_have_more_that_adds_nothing_is_invalid() -> None:
    calls: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(dict(request.url.params))
        doc = {"id": "i", "paas": {"teams": [{"id": "a"}]}}
        return ok(doc, pagination={"teams": {"hasNextPage": True, "count": 1}})

    with pytest.raises(InvalidResponseError, match="page 2 of teams adds no entry"):
        run_client(handler, lambda b: b.invoice("i"))
    assert len(calls) == 2


def test_more_than_the_page_cap_per_level_is_invalid() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        page = request.url.params.get("teamsPage", "1")
        calls.append(page)
        doc = {"id": "i", "paas": {"teams": [{"id": f"t{page}"}]}}
        return ok(doc, pagination={"teams": {"hasNextPage": True}})

    with pytest.raises(InvalidResponseError, match=f"more than {MAX_PAGES} pages"):
        run_client(handler, lambda b: b.invoice("i"))
    assert len(calls) == MAX_PAGES


def test_a_legacy_answer_to_current_parameters_is_asked_again_in_its_own() -> None:
    """A legacy server ignores ``teamsPerPage``: its first page came at its own size (2),
    so ``page=2`` at ``per_page=100`` would skip teams. It is asked again from page 1."""
    seen: list[dict[str, str]] = []
    teams = [{"id": f"t{i}", "price": {"total": 100 * i}} for i in range(5)]

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        seen.append(query)
        size = int(query.get("per_page", "2"))
        page = int(query.get("page", "1"))
        shown = teams[(page - 1) * size : page * size]
        more = page * size < len(teams)
        doc = {"id": "i", "paid": False, "paasUsage": {"teams": shown}}
        return ok(doc, pagination={"hasNextPage": more, "cursor": "decoy" if more else None})

    contracts = Contracts()
    invoice, _ = run_client(handler, lambda b: b.invoice("i"), contracts=contracts)
    assert [t.id for t in invoice.teams] == [f"t{i}" for i in range(5)]
    assert [t.price.total for t in invoice.teams] == [0.0, 1.0, 2.0, 3.0, 4.0]  # cents read
    assert [(q.get("teamsPerPage"), q.get("per_page"), q.get("page")) for q in seen] == [
        ("100", None, None),  # the current contract's parameters, first
        (None, "100", None),  # page 1 again, in the legacy contract's
    ]
    assert all(q["removeLegacyFields"] == "true" for q in seen)
    assert contracts.last == "legacy"
    seen.clear()  # the next request asks in the legacy contract's parameters straight away
    run_client(handler, lambda b: b.invoice("i"), contracts=contracts)
    assert [(q.get("teamsPerPage"), q.get("per_page")) for q in seen] == [(None, "100")]


def test_a_current_answer_to_legacy_parameters_is_asked_again_in_its_own() -> None:
    seen: list[dict[str, str]] = []
    teams = [{"id": f"t{i}"} for i in range(3)]

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        seen.append(query)
        shown, more = window(teams, query, "teams")
        doc = {"id": "i", "status": "open", "paas": {"teams": shown}}
        return ok(doc, pagination={"teams": {"hasNextPage": more}})

    contracts = Contracts(last="legacy")  # the account answered in the legacy contract before
    invoice, _ = run_client(handler, lambda b: b.invoice("i"), contracts=contracts)
    assert [t.id for t in invoice.teams] == ["t0", "t1", "t2"]
    assert [(q.get("per_page"), q.get("teamsPerPage"), q.get("teamsPage")) for q in seen] == [
        ("100", None, None),
        (None, "100", None),
        (None, "100", "2"),
    ]
    assert contracts.last == "current"


def test_a_list_answered_in_the_legacy_contract_goes_on_in_its_parameters() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        seen.append(query)
        if query.get("cursor") == "n":
            return ok({"invoices": [{"id": "b", "paid": True}]}, pagination={"hasNextPage": False})
        page = {"hasNextPage": True, "cursor": "n"}
        return ok({"invoices": [{"id": "a", "paid": False, "total": 1250}]}, pagination=page)

    listing, _ = run_client(handler, lambda b: b.invoices())
    assert [(e.id, e.paid, e.total) for e in listing.entries] == [
        ("a", False, 12.5),
        ("b", True, None),
    ]
    assert listing.contract == "legacy"
    assert [(q.get("perPage"), q.get("per_page"), q.get("cursor")) for q in seen] == [
        ("100", None, None),
        (None, "100", "n"),
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            {"id": "i", "status": "open", "paas": {"teams": [{"id": "a"}]}},
            {"id": "i", "paid": True, "paasUsage": {"teams": [{"id": "b"}]}},
        ),
        (
            {"id": "i", "paid": True, "paasUsage": {"teams": [{"id": "a"}]}},
            {"id": "i", "status": "open", "paas": {"teams": [{"id": "b"}]}},
        ),
    ],
    ids=["current-then-legacy", "legacy-then-current"],
)
def test_pages_of_one_answer_in_two_contracts_are_invalid(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    answers = iter(
        [ok(first, pagination={"hasNextPage": True, "teams": {"hasNextPage": True}}), ok(second)]
    )
    with pytest.raises(InvalidResponseError, match="two billing contracts in one poll"):
        run_client(
            lambda request: next(answers),
            lambda b: b.invoice("i"),
            contracts=Contracts(last="legacy" if "paid" in first else "current"),
        )


@pytest.mark.parametrize(
    ("mode", "answer", "message"),
    [
        (
            "current",
            {"id": "i", "paid": True, "paasUsage": {}},
            "a legacy-contract answer, and NORTHFLANK_API_CONTRACT is current",
        ),
        (
            "legacy",
            {"id": "i", "status": "open", "paas": {}},
            "a current-contract answer, and NORTHFLANK_API_CONTRACT is legacy",
        ),
    ],
)
def test_a_contract_the_settings_rule_out_is_invalid(
    mode: Any, answer: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidResponseError, match=message):
        run_client(
            lambda request: ok(answer), lambda b: b.invoice("i"), contracts=Contracts(mode=mode)
        )


def test_legacy_mode_sends_no_remove_legacy_fields() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        return ok({"id": "i", "paid": True, "paasUsage": {"teams": []}})

    run_client(handler, lambda b: b.invoice("i"), contracts=Contracts(mode="legacy"))
    assert seen == [{"per_page": "100"}]
