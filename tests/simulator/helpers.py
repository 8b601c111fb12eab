"""What the simulator's tests share: the organisation and token their ``sim`` runs with
(each module overrides ``sim_org`` and ``sim_options`` with these), and checks of the
simulator's documents. The ``client`` fixture (HTTP on ``sim``) is in conftest."""

from __future__ import annotations

import contextlib
import itertools
import math
import zlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import httpx

from exporter.simulator import (
    DEFAULT_TOKEN,
    Organisation,
    Resource,
    Simulator,
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
DAY = 24 * HOUR
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


# -- the two contracts ---------------------------------------------------------------------

CURRENT = {"removeLegacyFields": "true"}  # what asks a Simulator(contract="legacy") for it
_AMOUNT_KEYS = {"total", "subTotal", "base", "proration", "amount"}
_CATEGORIES = {"paasUsage": "paas", "byocUsage": "byoc"}


def major(cents: float) -> float:
    """What the wire spec says a current amount is: exactly cents / 100, as a decimal."""
    return float(Decimal(repr(cents)) / 100)


def as_current(node: Any) -> Any:
    """A legacy document as the current contract must give it (but ``status``, which a
    legacy document does not carry): categories renamed, ``paid`` gone, every amount
    (``price`` values, totals, line items, tax amount) divided by 100, exactly."""
    if isinstance(node, list):
        return [as_current(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "paid":
            continue
        name = _CATEGORIES.get(key, key)
        if key == "price":
            out[name] = {dim: major(cents) for dim, cents in value.items()}
        elif key in _AMOUNT_KEYS and isinstance(value, int | float):
            out[name] = major(value)
        else:
            out[name] = as_current(value)
    return out


def amounts(node: Any, key: str = "") -> list[Any]:
    """Every amount of a current document (as :func:`as_current` finds them)."""
    if isinstance(node, list):
        return [a for item in node for a in amounts(item, key)]
    if isinstance(node, dict):
        if key == "price":
            return list(node.values())
        return [a for k, v in node.items() for a in amounts(v, k)]
    return [node] if key in _AMOUNT_KEYS else []


def body(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# -- the current breakdown's pages ---------------------------------------------------------

LEVELS = ("teams", "projects", "resources")


def level_pages(
    client: httpx.Client, path: str, level: str, size: int = 2, **query: str
) -> list[dict[str, Any]]:
    """The pages of one level of a current breakdown (every level ``size`` a page, the
    other levels at page 1), while its ``pagination`` says it has a next page."""
    sizes = {f"{name}PerPage": str(size) for name in LEVELS}
    pages = []
    for number in itertools.count(1):
        answer = body(client.get(path, params={**query, **sizes, f"{level}Page": str(number)}))
        pages.append(answer)
        assert answer["pagination"][level]["count"] <= size
        if not answer["pagination"][level]["hasNextPage"]:
            return pages
        assert number < 100
    raise AssertionError("unreachable")


def canonical(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Breakdown entries keyed by ``id`` (resource types by ``resourceType``), their
    child arrays likewise: what merging pages by ID gives, whatever the order."""
    out: dict[str, Any] = {}
    for entry in entries:
        key = entry.get("id", entry.get("resourceType"))
        fields = {k: v for k, v in entry.items() if not isinstance(v, list)}
        children = {k: canonical(v) for k, v in entry.items() if isinstance(v, list)}
        assert key not in out, f"{key} twice in one array"
        out[key] = (fields, children)
    return out


def merge_pages(pages: list[dict[str, Any]], top: str) -> dict[str, Any]:
    """The union of pages' ``paas.<top>`` (``teams`` or ``projects``), merged by ID."""
    merged: dict[str, Any] = {}
    for page in pages:
        _merge_into(merged, canonical(page["data"]["paas"][top]))
    return merged


def _merge_into(into: dict[str, Any], more: dict[str, Any]) -> None:
    for key, (fields, children) in more.items():
        if key not in into:
            into[key] = (fields, {})
        assert into[key][0] == fields, f"{key} differs between pages"
        for name, kids in children.items():
            _merge_into(into[key][1].setdefault(name, {}), kids)


@contextlib.contextmanager
def serve(
    org: Organisation | None = None, **options: Any
) -> Iterator[tuple[Simulator, httpx.Client]]:
    """A started simulator of ``org`` (with the default token) and a client on it."""
    with (
        Simulator(org, **options) as sim,
        httpx.Client(base_url=sim.url, headers=AUTH, timeout=10) as client,
    ):
        yield sim, client


# -- usage figures as the docstrings define them ---------------------------------------------


def resource_hour(team_id: str, resource: Resource, hour: int) -> dict[str, int]:
    """A resource's cents in an hour, per the documented rule: ``round(monthly cents *
    factor / 720)`` (half up) per dimension, the factor (0.5 .. 1.5 in steps of 0.05)
    from a CRC-32 of (team, resource ID, hour)."""
    step = zlib.crc32(f"{team_id}\0{resource.id}\0{hour}".encode()) % 21
    return {
        dim: math.floor(Fraction(cents) * (10 + step) / (20 * 720) + Fraction(1, 2))
        for dim, cents in resource.price.items()
        if cents
    }


def summed(prices: Iterable[Mapping[str, float]]) -> dict[str, Any]:
    """A price object of the sum of ``prices`` (cents): ``total`` and the non-zero
    dimensions."""
    dims: dict[str, float] = {}
    for price in prices:
        for dim, cents in price.items():
            if dim != "total":
                dims[dim] = dims.get(dim, 0) + cents
    kept = {dim: cents for dim, cents in dims.items() if cents}
    return {"total": sum(kept.values()), **kept}
