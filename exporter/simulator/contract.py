"""The two billing contracts: which one an answer is in, and a document in either.

The views build every document once, in the legacy contract's shape (cents, the keys
``paasUsage`` and ``byocUsage``, an invoice's ``paid`` with its ``status`` beside it);
:func:`to_contract` turns it into the contract asked for: the legacy one drops
``status``, the current one renames the categories (``paas``, ``byoc``), drops ``paid``
and gives every amount in major units, exactly ``cents / 100`` as a decimal
(:func:`major`). :func:`lift_team` makes a single-team token's current breakdown start
at the project level. Paging is :mod:`.paging`'s; this module imports only the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from exporter.simulator.model import Json

Contract = Literal["legacy", "current"]
# What Simulator(contract=...) takes: "legacy" answers the current contract to a request
# with removeLegacyFields=true, "legacy-pinned" never does.
MODES = ("legacy", "current", "legacy-pinned")
# The endpoints Simulator(endpoint_contracts=...) may give a mode of their own.
ENDPOINTS = ("list_invoices", "get_invoice", "list_usage", "get_usage", "credit_balance")


def check_modes(contract: str, endpoint_contracts: Mapping[str, str]) -> None:
    """ValueError for a mode or an endpoint name the simulator does not know."""
    for name, mode in {"contract": contract, **endpoint_contracts}.items():
        if mode not in MODES:
            raise ValueError(f"{name}: the mode must be one of {', '.join(MODES)}, not {mode!r}")
        if name != "contract" and name not in ENDPOINTS:
            raise ValueError(f"endpoint_contracts: {name!r} is none of {', '.join(ENDPOINTS)}")


def answer_contract(mode: str, query: Mapping[str, str]) -> Contract:
    """The contract of an answer in ``mode`` to a request with ``query``."""
    if mode == "current":
        return "current"
    if mode == "legacy" and query.get("removeLegacyFields", "").lower() in ("true", "1"):
        return "current"
    return "legacy"


def major(cents: float) -> float:
    """``cents / 100`` exactly as a decimal: ``float(Decimal(repr(cents)) / 100)`` (1234.5
    is 12.345, 0.25 is 0.0025), with a fast path for whole cents (where float division,
    correctly rounded, gives the same float)."""
    if isinstance(cents, int) or cents.is_integer():
        return cents / 100
    return float(Decimal(repr(cents)) / 100)


def to_contract(doc: Json, contract: Contract) -> Json:
    """``doc`` (legacy shape, cents) in ``contract``: the legacy one is ``doc`` itself
    without ``status``; the current one a new document (see the module docstring)."""
    if contract == "legacy":
        doc.pop("status", None)
        return doc
    return _current(doc)


def lift_team(doc: Json) -> None:
    """A single-team token's current breakdown (in place): ``paasUsage.projects`` (that
    team's) instead of ``paasUsage.teams``."""
    paas = doc["paasUsage"]
    teams = paas.pop("teams", [])
    paas["projects"] = teams[0].get("projects", []) if teams else []


_AMOUNTS = frozenset(("total", "subTotal"))
_CATEGORIES = {"paasUsage": "paas", "byocUsage": "byoc"}
_LEVELS = ("teams", "projects", "resourceTypes", "resources")


def _current(doc: Json) -> Json:
    out: Json = {}
    for key, value in doc.items():
        if key == "paid":
            continue
        if key in _CATEGORIES:
            out[_CATEGORIES[key]] = _entry(value)
        elif key in _AMOUNTS:
            out[key] = major(value)
        elif key == "lineItems":
            out[key] = [
                {k: v if k == "title" else major(v) for k, v in item.items()} for item in value
            ]
        elif key == "discounts":
            out[key] = {"total": major(value["total"])}
        elif key == "tax":
            out[key] = {**value, "amount": major(value["amount"])}
        else:
            out[key] = value
    return out


def _entry(entry: Mapping[str, Any]) -> Json:
    """A category or a breakdown entry (team, project, resource type, resource)."""
    out = dict(entry)
    price = out.get("price")
    if price is not None:
        out["price"] = {
            dim: cents / 100 if type(cents) is int or cents.is_integer() else major(cents)
            for dim, cents in price.items()
        }
    for level in _LEVELS:
        children = out.get(level)
        if children is not None:
            out[level] = [_entry(child) for child in children]
    return out
