"""The fake Northflank API the property tests poll (every answer derived from a ``World``),
the worlds of the bugs the properties found, kept as explicit examples, a client on the
fake API with a fake clock, and the 200 bodies the client and the Poller are fed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

import httpx
from hypothesis import strategies as st

from exporter.api.client import Client, RetryPolicy
from exporter.settings import Settings
from tests.contracts import to_current
from tests.property_strategies import World, dumps, fields, ints, json_values, texts, worlds

BASE_URL = "http://api.test"

# --------------------------------------------------------------------------- the fake API


def _no_resources(project: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in project.items() if k != "resourceTypes"}


def answers(world: World) -> dict[tuple[str | None, str | None], dict[str, Any]]:
    """The ``get_invoice`` answers, by (teamId, projectId), as the reference page says.

    Unfiltered: teams with their totals, projects only when there is one team. teamId:
    that team with its projects. projectId: the team, its price the project's slice,
    with that project and its resource types and resources.
    """
    one_team = len(world.teams) == 1
    unfiltered = dict(world.invoice)
    unfiltered["paasUsage"] = {
        **world.invoice["paasUsage"],
        "teams": [
            {**t, "projects": [_no_resources(p) for p in t["projects"]]}
            if one_team
            else {k: v for k, v in t.items() if k != "projects"}
            for t in world.teams
        ],
    }
    out: dict[tuple[str | None, str | None], dict[str, Any]] = {(None, None): unfiltered}
    for team in world.teams:
        team_view = {**team, "projects": [_no_resources(p) for p in team["projects"]]}
        out.setdefault((team["id"], None), _only({**world.invoice}, []))
        out[(team["id"], None)]["paasUsage"]["teams"].append(team_view)
        for project in team["projects"]:
            slice_view = {"id": team["id"], "price": project.get("price"), "projects": [project]}
            out.setdefault((team["id"], project["id"]), _only({**world.invoice}, []))
            out[(team["id"], project["id"])]["paasUsage"]["teams"].append(slice_view)
    return out


def _only(invoice: dict[str, Any], teams: list[dict[str, Any]]) -> dict[str, Any]:
    invoice["paasUsage"] = {**invoice["paasUsage"], "teams": teams}
    return invoice


def reply(data: Any, status: int = 200) -> httpx.Response:
    body = {"data": data} if status == 200 else {"error": {"status": status, "message": "no"}}
    return httpx.Response(
        status, content=dumps(body).encode(), headers={"content-type": "application/json"}
    )


class FakeApi:
    """Routes a request to the world's answer, in ``contract`` (the world is written in
    the legacy one); a path it does not know is a 404."""

    def __init__(self, world: World, contract: str = "legacy") -> None:
        self.world = world
        self.invoices = answers(world)
        self.contract = contract

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = self._answer(request)
        if self.contract == "current" and response.status_code == 200:
            data = to_current(httpx.Response(200, content=response.content).json()["data"])
            return reply(data)
        return response

    def _answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.partition(b"?")[0].decode("ascii")
        parts = [unquote(part) for part in path.split("/")[1:]]
        query = request.url.params
        world = self.world
        if parts == ["v1", "billing", "invoices"]:
            summary = {
                k: world.invoice[k] for k in ("id", "period", "currency") if k in world.invoice
            }
            if "paid" in world.invoice:  # as the invoice says it, or not at all
                summary["paid"] = world.invoice["paid"]
            summary["paasUsage"] = {"price": world.invoice["paasUsage"].get("price")}
            return reply({"invoices": [summary]})
        if parts[:3] == ["v1", "billing", "invoices"] and parts[3:] == [world.id]:
            key = (query.get("teamId"), query.get("projectId"))
            if key not in self.invoices:  # a filter naming nothing the invoice holds
                return reply(_only(dict(world.invoice), []))
            return reply(self.invoices[key])
        if parts == ["v1", "billing", "usage"]:
            return reply({"usage": self._usage(world.usage, query)})
        match parts:
            case ["v1", "teams", team, "billing", "usage"] if team in world.team_usage:
                return reply({"usage": self._usage(world.team_usage[team], query)})
        return reply(None, 404)

    def _usage(self, entries: list[dict[str, Any]], query: Any) -> list[dict[str, Any]]:
        """The hours, or in the current contract with ``granularity=total`` one entry
        summing those from ``startTime`` on (each hour once, as listed; hours past
        ``endTime`` too: the worlds' hours are not bound to any clock)."""
        if self.contract != "current" or query.get("granularity") != "total":
            return entries
        start, end = float(query["startTime"]), float("inf")
        seen: set[float] = set()
        sums: dict[str, dict[str, float]] = {}
        for entry in entries:
            at = entry["timestamp"]
            if not start <= at < end or at in seen:
                continue
            seen.add(at)
            for part in ("paasUsage", "byocUsage"):
                price = (entry.get(part) or {}).get("price") or {}
                into = sums.setdefault(part, {})
                for key, value in price.items():
                    if value is not None:
                        into[key] = into.get(key, 0) + value
        return [{"timestamp": start, **{part: {"price": p} for part, p in sums.items()}}]


# --------------------------------------------------------------------------- bugs found
# Each was found by a property (tests/test_properties_*.py) and is kept as an example of it.

END = 1_700_000_000


def tiny(
    *,
    invoice_id: str = "inv-1",
    currency: str = "usd",
    teams: Iterable[dict[str, Any]] = (),
    usage: Iterable[dict[str, Any]] = (),
    team_usage: Mapping[str, list[dict[str, Any]]] | None = None,
) -> World:
    teams = list(teams)
    head = {
        "id": invoice_id,
        "period": {"end": END},
        "currency": currency,
        "paasUsage": {"teams": [{k: v for k, v in t.items() if k != "projects"} for t in teams]},
    }
    return World(
        head, teams, list(usage), {t["id"]: (team_usage or {}).get(t["id"], []) for t in teams}
    )


def hour(total: float) -> dict[str, Any]:
    return {"timestamp": END, "paasUsage": {"price": {"total": total}}}


PRICE = {"total": 100}
# JSON "\ud800" is a string Python holds and UTF-8 cannot encode: httpx fails on it in a URL,
# render() on it in a label (.encode()), and Poller.poll() raises.
SURROGATE_IN_URL = tiny(invoice_id="\ud800")
SURROGATE_IN_LABEL = tiny(currency="\ud800")
# IDs go into URL paths unescaped: a control character is httpx.InvalidURL, "/" a wrong path
# (404, not_found), ".." the org-wide usage endpoint (a team shows the org's unbilled spend).
CONTROL_CHAR_IN_URL = tiny(invoice_id="\n")
SLASH_IN_URL = tiny(teams=[{"id": "x/y", "projects": []}])
DOTS_IN_URL = tiny(
    teams=[{"id": "..", "projects": []}], usage=[hour(10000)], team_usage={"..": [hour(500)]}
)
# A team ID "" is falsy: list_usage(team_id="") asks for the org-wide usage instead.
EMPTY_TEAM_ID = tiny(
    teams=[{"id": "", "projects": []}], usage=[hour(10000)], team_usage={"": [hour(500)]}
)
# Line items of one title added: exactly as the decimals add, rounded once at the end (a
# float after each item is 104604544592.63007 here, not 104604544592.63005).
THREE_ITEMS_ONE_TITLE = tiny()
THREE_ITEMS_ONE_TITLE.invoice["lineItems"] = [
    {"proration": 10_460_454_459_262},
    {"proration": 0.005},
    {"proration": 1},
]
# The same ID twice in one answer: the same series twice.
TWO_TEAMS_ONE_ID = tiny(teams=[{"id": "t", "price": PRICE, "projects": []}] * 2)
TWO_PROJECTS_ONE_ID = tiny(
    teams=[{"id": "t", "projects": [{"id": "p", "price": PRICE, "resourceTypes": []}] * 2}]
)
# Bodies the client lets through as ValueError, RecursionError and TypeError.
HUGE_INTEGER = b'{"data": {"id": ' + b"1" * 5000 + b"}}"
DEEP_NESTING = b"[" * 5000 + b"]" * 5000
UNHASHABLE_ID = (
    b'{"data": {"teams": [{"id": []}]}, "pagination": {"hasNextPage": true}}',
    b'{"data": {"teams": [{"id": []}]}}',
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def make_client(handler: Any, fake: FakeTime | None = None) -> Client:
    """A client of ``handler`` that does not retry (the endpoints: ``Billing(client,
    contracts)``)."""
    fake = fake or FakeTime()
    return Client(
        BASE_URL,
        "t",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(retries=0),
        sleep=fake.sleep,
        clock=fake.clock,
    )


# --------------------------------------------------------------------------- bodies, settings

pagination = st.one_of(
    json_values(),
    fields({}, {"hasNextPage": st.booleans(), "cursor": texts(), "count": ints}),
)
envelope = st.fixed_dictionaries(
    {"data": st.one_of(json_values(raw=True), worlds().map(lambda w: answers(w)[(None, None)]))},
    optional={"pagination": pagination},
)
bodies = st.one_of(
    envelope.map(dumps).map(str.encode),
    json_values(raw=True).map(dumps).map(str.encode),
    st.binary(max_size=64),
)

SETTINGS = {
    depth: Settings(api_token="t", depth=depth) for depth in ("team", "project", "resource")
}
