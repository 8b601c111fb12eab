"""What the simulator's tests share: the organisation and token their ``sim`` runs with
(each module overrides ``sim_org`` and ``sim_options`` with these), and checks of the
simulator's documents. The ``client`` fixture (HTTP on ``sim``) is in conftest."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import httpx

from exporter.simulator import (
    DEFAULT_TOKEN,
    Organisation,
    generate_organisation,
)

AUTH = {"Authorization": "Bearer sim-token"}
NOW = datetime(2026, 11, 17, 12, 30, tzinfo=UTC).timestamp()


SIM_OPTIONS = {"token": DEFAULT_TOKEN}  # what AUTH sends


def simulator_org() -> Organisation:
    """The organisation every simulator test's ``sim`` serves (a fixed "now")."""
    return generate_organisation(now=NOW)


def newest(org: Organisation) -> str:
    return org.newest_invoice().id


def get_invoice(client: httpx.Client, invoice_id: str, **query: str) -> dict[str, Any]:
    response = client.get(f"/v1/billing/invoices/{invoice_id}", params=query)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def assert_price_consistent(price: dict[str, Any]) -> None:
    dims = {k: v for k, v in price.items() if k != "total"}
    assert price["total"] == sum(dims.values())
    assert all(v != 0 for v in dims.values()), "zero dimensions must be left out"


def add_prices(prices: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for price in prices:
        for key, value in price.items():
            total[key] = total.get(key, 0) + value
    return total


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == response.status_code
    assert error["message"]
    assert error["id"]
    assert error["details"] == {}
    return error


# -- paging ----------------------------------------------------------------------------


def fetch_all(
    client: httpx.Client, path: str, max_count: int = 2, **query: str
) -> list[dict[str, Any]]:
    pages = []
    params: dict[str, str] = dict(query)
    while True:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        assert body["pagination"]["count"] <= max_count
        if not body["pagination"]["hasNextPage"]:
            assert body["pagination"]["cursor"] is None
            return pages
        params = {**query, "cursor": body["pagination"]["cursor"]}


def fetch_pages(
    client: httpx.Client, path: str, max_count: int = 2, **query: str
) -> list[dict[str, Any]]:
    """The invoice breakdown's pages: ``page=1, 2, ...`` while ``hasNextPage``."""
    pages = []
    for number in itertools.count(1):
        response = client.get(path, params={**query, "page": str(number)})
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        assert body["pagination"]["count"] <= max_count
        if not body["pagination"]["hasNextPage"]:
            assert body["pagination"]["cursor"] is None
            return pages
        assert number < 100
    raise AssertionError("unreachable")


def merge_resources(pages: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(project, resource type, resource) of every resource on a team's pages, in order."""
    return [
        (project["id"], group["resourceType"], resource["id"])
        for page in pages
        for project in page["data"]["paasUsage"]["teams"][0]["projects"]
        for group in project["resourceTypes"]
        for resource in group["resources"]
    ]


# -- hourly usage ------------------------------------------------------------------------

HOUR = 3600
TEAMS = ("team-1", "team-2", "team-3", "team-4")


def period_end(org: Organisation) -> float:
    return org.newest_invoice().period_end


def get_usage(client: httpx.Client, team: str | None = None, **query: str) -> list[Any]:
    path = "/v1/billing/usage" if team is None else f"/v1/teams/{team}/billing/usage"
    response = client.get(path, params=query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pagination"]["hasNextPage"] is False
    usage: list[Any] = body["data"]["usage"]
    assert body["pagination"]["count"] == len(usage)
    return usage


def stamps(usage: list[dict[str, Any]], since: float) -> list[float]:
    """The entries' hours, counted from ``since``."""
    return [(entry["timestamp"] - since) / HOUR for entry in usage]
