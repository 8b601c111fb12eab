"""What the property tests draw from: arbitrary JSON (nasty names, numbers Python cannot
hold, absurd nesting) and well-shaped but hostile invoices, as a ``World`` the fake API
answers from. ``FAST`` is the Hypothesis settings they share.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, assume
from hypothesis import strategies as st

FAST = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}

# --------------------------------------------------------------------------- JSON values

NASTY = (
    "",
    " ",
    '"',
    "\\",
    "\n",
    "\\n",
    '\\"',
    '"}',
    '"} 1\n',
    "{",
    ",",
    "=",
    "\r",
    "\t",
    "\x00",
    "\x7f",
    "# EOF",
    "é",
    "Équipe B",
    "💸",
    "\u2028",
    "\ufeff",
    "/",
    "?",
    "#",
    "%2F",
    ".",
    "..",
    "a b",
    "team-1",
)


def texts(*, surrogates: bool = True) -> st.SearchStrategy[str]:
    """Names and IDs: nasty fragments, arbitrary unicode (lone surrogates if asked)."""
    chars = st.characters(codec="utf-8")  # any character but a lone surrogate
    if surrogates:  # legal in JSON as "\\ud800", not encodable as UTF-8
        chars = st.one_of(chars, st.characters(categories=["Cs"]))
    return st.one_of(
        st.sampled_from(NASTY),
        st.text(chars, max_size=10),
        st.lists(st.one_of(st.sampled_from(NASTY), chars), max_size=4).map("".join),
    )


@dataclass(frozen=True)
class Raw:
    """A JSON literal written as it is: numbers Python cannot hold, absurd nesting."""

    text: str


RAW_LITERALS = (
    Raw("1" * 5000),  # beyond Python's 4300-digit int limit
    Raw("-" + "9" * 4400),
    Raw("1e400"),
    Raw("-1e400"),
    Raw("1" + "0" * 400),
    Raw("0." + "0" * 400 + "1"),
    Raw("[" * 5000 + "]" * 5000),  # deeper than the recursion limit
    Raw('{"id":' * 3000 + "1" + "}" * 3000),
)
KEYS = (
    "id",
    "name",
    "price",
    "total",
    "cpu",
    "memory",
    "storage",
    "gpu",
    "vcpu",
    "gpuMemory",
    "cluster",
    "teams",
    "projects",
    "resourceTypes",
    "resourceType",
    "resources",
    "paasUsage",
    "byocUsage",
    "period",
    "start",
    "end",
    "currency",
    "lineItems",
    "title",
    "base",
    "proration",
    "subTotal",
    "discounts",
    "tax",
    "percent",
    "amount",
    "paid",
    "invoices",
    "usage",
    "timestamp",
    "hasNextPage",
    "cursor",
)
HUGE_INTS = (2**53 + 1, 10**20, 10**308, 10**309, -(10**400), 2**1024, 10**4000)
ints = st.one_of(st.integers(), st.sampled_from(HUGE_INTS))


def json_values(*, raw: bool = False) -> st.SearchStrategy[Any]:
    """Any JSON (and then some: NaN, Infinity); ``raw`` adds literals Python cannot parse."""
    scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(), texts())
    if raw:
        scalars = st.one_of(scalars, st.sampled_from(RAW_LITERALS))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(KEYS), texts()), inner, max_size=5),
        ),
        max_leaves=25,
    )


def dumps(value: Any) -> str:
    """JSON text, ASCII only (a lone surrogate becomes ``\\ud800``), Raw literals as they are."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


# --------------------------------------------------------------------------- well-shaped invoices

PAAS = ("cpu", "memory", "storage", "gpu")
BYOC = (("vcpu", "vcpu"), ("memory", "memory"), ("gpuMemory", "gpu_memory"), ("cluster", "cluster"))
HOUR = 3600


def amounts(*, finite: bool = False) -> st.SearchStrategy[int | float]:
    """Cents: small, huge, negative, fractional; ``finite=False`` adds what must be refused."""
    values = st.one_of(
        st.integers(-(10**6), 10**9),
        st.integers(),
        st.sampled_from([0, -0.0, 0.5, 0.005, 1 / 3, 5e-324, 1e308, -1e308, 2**53 + 1, 10**20]),
        st.floats(allow_nan=False, allow_infinity=False),
    )
    if not finite:
        values = st.one_of(values, st.sampled_from([10**309, math.inf, -math.inf, math.nan]))
    return values


def fields(
    required: Mapping[str, st.SearchStrategy[Any]], optional: Mapping[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """An object whose optional fields are each there, null, or left out."""
    return st.fixed_dictionaries(
        dict(required), optional={k: st.one_of(st.none(), v) for k, v in optional.items()}
    )


def paas_price(money: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return fields({}, {name: money for name in ("total", *PAAS)})


def byoc_price(money: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return fields({}, {name: money for name in ("total", *(key for key, _ in BYOC))})


def by_id(item: dict[str, Any]) -> Any:
    return item["id"]


@dataclass
class World:
    """The organisation the fake API answers from; every answer is derived from it."""

    invoice: dict[str, Any]  # the unfiltered invoice, teams without projects
    teams: list[dict[str, Any]]  # each with all its projects, resource types, resources
    usage: list[dict[str, Any]]
    team_usage: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.invoice["id"])

    @property
    def end(self) -> float:
        return float(self.invoice["period"]["end"])


@st.composite
def worlds(
    draw: st.DrawFn, *, unique: bool = True, surrogates: bool = True, finite: bool = False
) -> World:
    # Lone surrogates and amounts that must be refused, in one world of eight: each
    # fails the whole poll, so more would leave few polls that succeed.
    name = texts(surrogates=surrogates and draw(st.integers(0, 7)) == 0)
    money = amounts(finite=finite or draw(st.integers(0, 7)) > 0)
    price = paas_price(money)

    def listed(item: st.SearchStrategy[Any], key: Any, size: int) -> st.SearchStrategy[Any]:
        return st.lists(item, max_size=size, unique_by=key if unique else None)

    # Repeated IDs: drawn from a few, so that they do repeat.
    ident = name if unique else st.sampled_from(["a", "b", 'q"\\\n'])
    resource = fields({"id": ident}, {"name": name, "price": price})
    kind = fields(
        {"resourceType": ident},
        {"price": price, "resources": listed(resource, by_id, 3)},
    )
    project = fields(
        {"id": ident, "resourceTypes": listed(kind, lambda k: k["resourceType"], 2)},
        {"name": name, "price": price},
    )
    team = fields(
        {"id": ident, "projects": listed(project, by_id, 3)}, {"name": name, "price": price}
    )
    teams = draw(listed(team, by_id, 3 if unique else 4))
    stamps = st.one_of(
        st.integers(1, 4_102_444_800), st.floats(1e-3, 1e15), st.sampled_from([1e308, -5.5])
    )
    end = draw(stamps)
    line_item = fields(
        {},
        {
            "title": st.one_of(st.sampled_from(["Support", ""]), name),
            "total": money,
            "base": money,
            "proration": money,
        },
    )
    head = draw(
        fields(
            {"id": name, "period": fields({"end": st.just(end)}, {"start": stamps})},
            {
                "currency": st.one_of(st.just("usd"), name),
                "byocUsage": fields({}, {"price": byoc_price(money)}),
                "lineItems": st.lists(line_item, max_size=4),
                "subTotal": money,
                "discounts": fields({}, {"total": money}),
                "tax": fields({}, {"percent": money, "amount": money}),
                "total": money,
                "paid": st.booleans(),
            },
        )
    )
    head["paasUsage"] = {
        **draw(fields({}, {"price": price})),
        "teams": [{k: v for k, v in t.items() if k != "projects"} for t in teams],
    }
    hours = st.one_of(st.integers(-3, 6).map(lambda k: end + k * HOUR), stamps)
    paas_usage = fields({}, {"price": price})
    # An hour with neither category is in neither billing contract: always one.
    org_entry = fields(
        {"timestamp": hours, "paasUsage": paas_usage},
        {"byocUsage": fields({}, {"price": byoc_price(money)})},
    )
    team_entry = fields({"timestamp": hours, "paasUsage": paas_usage}, {})
    usage = draw(st.lists(org_entry, max_size=4))
    team_usage = [draw(st.lists(team_entry, max_size=3)) for _ in teams]
    # As the exporter will see them: "\\ud800\\udc00" in JSON is one character, U+10000.
    head, teams, usage, team_usage = json.loads(dumps([head, teams, usage, team_usage]))
    if unique:
        assume(len({t["id"] for t in teams}) == len(teams))
    usage_of = {t["id"]: entries for t, entries in zip(teams, team_usage, strict=True)}
    return World(head, teams, usage, usage_of)
