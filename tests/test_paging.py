"""The legacy contract's paging schemes and the stop rules, through the billing
endpoints, on httpx.MockTransport (the current contract's pages per level:
``tests/test_paging_levels.py``).

Lists page by ``cursor``, the invoice breakdown by ``page``; an API that ignores what
we send (a ``page`` on a list, a ``cursor`` on the breakdown) answers page 1 again, and
the loop must stop there, not spend the hour's budget.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from exporter.api.contract import Contracts
from exporter.api.errors import InvalidResponseError
from exporter.api.paging import MAX_PAGES, count_entries, merge_pages
from tests.client_helpers import Handler, ok
from tests.client_helpers import run_client as run_any

PAID = {"paid": True}  # what makes a list entry legacy
HOUR = {"paasUsage": {"price": {"total": 1}}}  # ... a usage entry


def run_client(handler: Handler, call: Any) -> Any:
    """As a legacy-contract client (NORTHFLANK_API_CONTRACT=legacy) would read."""
    return run_any(handler, call, contracts=Contracts(mode="legacy"))


def breakdown(*team_pages: list[str], decoy: bool = True) -> tuple[Any, list[dict[str, str]]]:
    """A breakdown paged by ``page``, each page carrying a decoy cursor; the queries seen."""
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        seen.append(query)
        number = int(query.get("page", "1"))  # a cursor is not a parameter of this endpoint
        teams = team_pages[number - 1] if number <= len(team_pages) else []
        more = number < len(team_pages)
        data = {
            "id": "inv-1",
            "total": 1234.5,
            "lineItems": [{"title": "PaaS usage", "total": 1000}],
            "paasUsage": {"price": {"total": 1000}, "teams": [{"id": t} for t in teams]},
        }
        pagination = {"hasNextPage": more, "cursor": "decoy" if decoy and more else None}
        return ok(data, pagination=pagination)

    return handler, seen


def test_breakdown_pages_by_page_number_and_ignores_its_cursor() -> None:
    handler, seen = breakdown(["a", "b"], ["c"], ["d"])
    invoice, client = run_client(handler, lambda c: c.invoice("inv-1"))
    assert [team.id for team in invoice.teams] == ["a", "b", "c", "d"]
    assert [q.get("page") for q in seen] == [None, "2", "3"]
    assert all("cursor" not in q for q in seen)
    assert all(q["per_page"] == "100" for q in seen)
    assert client.stats.requests == {("get_invoice", "200"): 3}


def test_what_every_page_repeats_counts_once() -> None:
    handler, _ = breakdown(["a"], ["b"], ["c"])
    invoice, _ = run_client(handler, lambda c: c.invoice("inv-1"))
    assert invoice.total == 12.345  # 1234.5 cents
    assert [(item.title, item.total) for item in invoice.line_items] == [("PaaS usage", 10.0)]


def test_lists_page_by_cursor() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        seen.append(query)
        if query.get("cursor") == "n":
            return ok({"invoices": [{"id": "b", **PAID}]}, pagination={"hasNextPage": False})
        return ok(
            {"invoices": [{"id": "a", **PAID}]}, pagination={"hasNextPage": True, "cursor": "n"}
        )

    invoices, client = run_client(handler, lambda c: c.invoices())
    assert [inv.id for inv in invoices.entries] == ["a", "b"]
    assert [q.get("cursor") for q in seen] == [None, "n"]
    assert all("page" not in q for q in seen)
    assert client.stats.requests == {("list_invoices", "200"): 2}


def test_a_list_that_ignores_the_cursor_stops_on_the_second_page() -> None:
    """Page 1 again (new cursor each time): it adds nothing, so the poll fails at once."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        cursor = f"c{len(calls)}"
        page = {"hasNextPage": True, "cursor": cursor}
        return ok({"invoices": [{"id": "a", **PAID}]}, pagination=page)

    with pytest.raises(InvalidResponseError, match="page 2 adds no entry"):
        run_client(handler, lambda c: c.invoices())
    assert len(calls) == 2


def test_a_breakdown_that_ignores_page_stops_on_the_second_page() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return ok(
            {"id": "i", "paasUsage": {"teams": [{"id": "a"}]}}, pagination={"hasNextPage": True}
        )

    with pytest.raises(InvalidResponseError, match="adds no entry"):
        run_client(handler, lambda c: c.invoice("i"))
    assert len(calls) == 2


def test_a_cursor_that_repeats_is_invalid() -> None:
    calls: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.params.get("cursor"))
        usage = [{"timestamp": 3600.0 * len(calls), **HOUR}]
        cursor = "x" if len(calls) < 3 else "y"
        return ok({"usage": usage}, pagination={"hasNextPage": True, "cursor": cursor})

    with pytest.raises(InvalidResponseError, match="repeats an earlier cursor"):
        run_client(handler, lambda c: c.usage(0))
    assert calls == [None, "x"]


def test_a_list_page_without_a_cursor_is_invalid() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return ok({"usage": [{"timestamp": 0, **HOUR}]}, pagination={"hasNextPage": True})

    with pytest.raises(InvalidResponseError, match="no cursor"):
        run_client(handler, lambda c: c.usage(0))


def test_more_than_the_page_cap_is_invalid() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("page", "1"))
        calls.append(number)
        teams = [{"id": f"t{number}"}]
        return ok({"id": "i", "paasUsage": {"teams": teams}}, pagination={"hasNextPage": True})

    with pytest.raises(InvalidResponseError, match=f"more than {MAX_PAGES} pages"):
        run_client(handler, lambda c: c.invoice("i"))
    assert calls == list(range(1, MAX_PAGES + 1))


def test_a_page_with_new_nested_entries_counts_as_new() -> None:
    """Page 2 of a projectId answer holds more resources of a type page 1 had."""

    def project(resources: list[str]) -> dict[str, Any]:
        kinds = [{"resourceType": "service", "resources": [{"id": r} for r in resources]}]
        team = {"id": "t", "projects": [{"id": "p", "resourceTypes": kinds}]}
        return {"id": "i", "paasUsage": {"teams": [team]}}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return ok(project(["r3"]), pagination={"hasNextPage": False})
        return ok(project(["r1", "r2"]), pagination={"hasNextPage": True})

    invoice, _ = run_client(handler, lambda c: c.invoice("i", team_id="t", project_id="p"))
    kind = invoice.teams[0].projects[0].resource_types[0]
    assert [res.id for res in kind.resources] == ["r1", "r2", "r3"]



def test_merge_pages_joins_nested_arrays_by_id() -> None:
    first = {"teams": [{"id": "t", "projects": [{"id": "p1"}]}], "total": 1}
    later = {"teams": [{"id": "t", "projects": [{"id": "p2"}]}], "total": 99}
    merged = merge_pages(first, later)
    assert merged == {"teams": [{"id": "t", "projects": [{"id": "p1"}, {"id": "p2"}]}], "total": 1}
    assert count_entries(merged) == 3


def test_usage_hours_merge_by_timestamp() -> None:
    merged = merge_pages(
        {"usage": [{"timestamp": 0}]}, {"usage": [{"timestamp": 0}, {"timestamp": 1}]}
    )
    assert merged == {"usage": [{"timestamp": 0}, {"timestamp": 1}]}
