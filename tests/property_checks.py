"""What the property tests check a poll's exposition against: both formats parse alike
with no series twice, a failure is a clean ``invalid_response``, and every label value
and amount of the cost families round-trips from the input.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from hypothesis import event
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter import metrics as m
from exporter.api.errors import ApiError
from tests.property_strategies import BYOC, PAAS, World

# --------------------------------------------------------------------------- valid expositions

Series = tuple[str, frozenset[tuple[str, str]]]


def parse_exposition(text: str, openmetrics: str) -> dict[Series, float]:
    """Both bodies parse, hold the same samples, and no series twice."""
    parsed = [
        ((s.name, frozenset(s.labels.items())), s.value)
        for family in parse_text(text)
        for s in family.samples
    ]
    twice = [series for series, count in Counter(key for key, _ in parsed).items() if count > 1]
    assert not twice, f"series exposed twice: {twice[:3]}"
    samples = dict(parsed)
    om = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in parse_openmetrics(openmetrics)
        for s in family.samples
    }
    assert om.keys() == samples.keys()
    assert all(same(om[key], value) for key, value in samples.items())
    return samples


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def near(a: float, b: float) -> bool:
    return same(a, b) or math.isclose(a, b, rel_tol=1e-9)


def leaves(exc: BaseException) -> Iterable[BaseException]:
    """The exceptions inside (possibly nested) exception groups of a TaskGroup."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def assert_invalid_response(exc: BaseException) -> None:
    event(f"failed: {exc!r}"[:60])
    for leaf in leaves(exc):
        if not (isinstance(leaf, ApiError) and leaf.reason == "invalid_response"):
            raise AssertionError(f"not a clean invalid_response: {leaf!r}") from exc


# --------------------------------------------------------------------------- the figures expected


def cents(value: Any) -> float:
    """Cents in major units, as the decimal the JSON wrote divided by 100 (so 1/3 of a
    cent is 0.003333333333333333, not the binary quotient, and 2**53 + 1 is not 2**53)."""
    exact = Decimal(value) if isinstance(value, int) else Decimal(repr(float(value)))
    return float(exact / 100)


def _cost(
    out: dict[Series, float],
    level: str,
    labels: dict[str, str],
    price: dict[str, Any] | None,
    dims: Iterable[tuple[str, str]],
) -> None:
    if not price:
        return
    where = frozenset(labels.items())
    if price.get("total") is not None:
        out[(f"northflank_{level}_cost", where)] = cents(price["total"])
    for key, dimension in dims:
        if price.get(key) is not None:
            series = (f"northflank_{level}_dimension_cost", where | {("dimension", dimension)})
            out[series] = cents(price[key])


def expected(world: World, depth: str) -> dict[Series, float]:
    """What the cost families must say, for an invoice whose IDs are unique at each level."""
    inv = world.invoice
    cur = inv.get("currency") or ""
    out: dict[Series, float] = {}
    out[(m.INVOICE_INFO.name, frozenset({("currency", cur), ("invoice_id", world.id)}))] = 1
    plain = {
        m.INVOICE_PERIOD_START.name: inv["period"].get("start"),
        m.INVOICE_PERIOD_END.name: inv["period"].get("end"),
        m.INVOICE_TAX_RATIO.name: (inv.get("tax") or {}).get("percent"),
        m.INVOICE_PAID.name: inv.get("paid"),
    }
    for name, value in plain.items():
        if value is not None:
            ratio = name.endswith("_ratio")
            out[(name, frozenset())] = float(value) / 100 if ratio else float(value)
    money = {
        m.INVOICE_AMOUNT.name: inv.get("total"),
        m.INVOICE_SUBTOTAL.name: inv.get("subTotal"),
        m.INVOICE_DISCOUNT.name: (inv.get("discounts") or {}).get("total"),
        m.INVOICE_TAX.name: (inv.get("tax") or {}).get("amount"),
    }
    for name, value in money.items():
        if value is not None:
            out[(name, frozenset({("currency", cur)}))] = cents(value)
    items: dict[str, dict[str, Decimal]] = {}
    for item in inv.get("lineItems") or ():  # the same titles added, exactly
        sums = items.setdefault(item.get("title") or "", {})
        for key in ("total", "base", "proration"):
            if item.get(key) is not None:
                sums[key] = sums.get(key, Decimal(0)) + Decimal(repr(cents(item[key])))
    suffix = {"total": "", "base": "_base", "proration": "_proration"}
    for title, sums in items.items():
        for key, value in sums.items():
            where = frozenset({("currency", cur), ("item", title)})
            out[(f"northflank_invoice_line_item{suffix[key]}_amount", where)] = float(value)
    byoc = (inv.get("byocUsage") or {}).get("price")
    _cost(out, "byoc", {"currency": cur}, byoc, BYOC)
    paas = (inv.get("paasUsage") or {}).get("price")
    _cost(out, "paas", {"currency": cur}, paas, ((d, d) for d in PAAS))
    for team in world.teams:
        in_team = {"currency": cur, "team": team["id"]}
        named = {**in_team, "team_name": team.get("name") or ""}
        _cost(out, "team", named, team.get("price"), ((d, d) for d in PAAS))
        # At depth team no projects show, not even those a one-team answer holds.
        for project in team["projects"] if depth != "team" else ():
            in_project = {**in_team, "project": project["id"]}
            named = {**in_project, "project_name": project.get("name") or ""}
            _cost(out, "project", named, project.get("price"), ((d, d) for d in PAAS))
            for kind in project["resourceTypes"] if depth == "resource" else ():
                in_type = {**in_project, "resource_type": kind["resourceType"]}
                _cost(out, "resource_type", in_type, kind.get("price"), ((d, d) for d in PAAS))
                for res in kind.get("resources") or ():
                    where = {
                        **in_type,
                        "resource": res["id"],
                        "resource_name": res.get("name") or "",
                    }
                    _cost(out, "resource", where, res.get("price"), ((d, d) for d in PAAS))
    return out


def unbilled_total(entries: Iterable[dict[str, Any]], since: float, keys: Iterable[str]) -> float:
    """Summed totals of the hours at or after ``since``, each hour once (the first)."""
    total, seen = 0.0, set()
    for entry in entries:
        if entry["timestamp"] < since or entry["timestamp"] in seen:
            continue
        seen.add(entry["timestamp"])
        for key in keys:
            price = (entry.get(key) or {}).get("price")
            if price and price.get("total") is not None:
                total += float(price["total"])
    return total


INVOICE_FAMILIES = {
    m.INVOICE_INFO.name,
    m.INVOICE_PERIOD_START.name,
    m.INVOICE_PERIOD_END.name,
    m.INVOICE_AMOUNT.name,
    m.INVOICE_SUBTOTAL.name,
    m.INVOICE_DISCOUNT.name,
    m.INVOICE_TAX.name,
    m.INVOICE_TAX_RATIO.name,
    m.INVOICE_PAID.name,
    m.LINE_ITEM.name,
    m.LINE_ITEM_BASE.name,
    m.LINE_ITEM_PRORATION.name,
}


def check_figures(world: World, depth: str, samples: Mapping[Series, float]) -> None:
    """Every label value and amount of the cost families round-trips from the input."""
    want = expected(world, depth)
    modelled = INVOICE_FAMILIES | {
        f"northflank_{level}_{kind}"
        for level in ("team", "project", "resource_type", "resource", "byoc", "paas")
        for kind in ("cost", "dimension_cost")
    }
    got = {key: value for key, value in samples.items() if key[0] in modelled}
    assert got.keys() == want.keys(), (
        f"missing {sorted(want.keys() - got.keys(), key=repr)[:3]}, "
        f"unexpected {sorted(got.keys() - want.keys(), key=repr)[:3]}"
    )
    for key, value in want.items():
        assert same(got[key], value), (key, got[key], value)
    cur = world.invoice.get("currency") or ""
    org = cents(unbilled_total(world.usage, world.end, ("paasUsage", "byocUsage")))
    assert near(samples[(m.UNBILLED_COST.name, frozenset({("currency", cur)}))], org)
    for team in world.teams:
        where = {"currency": cur, "team": team["id"], "team_name": team.get("name") or ""}
        amount = cents(unbilled_total(world.team_usage[team["id"]], world.end, ("paasUsage",)))
        got_amount = samples[(m.TEAM_UNBILLED_COST.name, frozenset(where.items()))]
        assert near(got_amount, amount), (team["id"], got_amount, amount)
