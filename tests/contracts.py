"""What tests of the two billing contracts share: a legacy document in the current
contract (:func:`to_current`), and an exposition's cost families compared line by line
(:func:`cost_lines`, :data:`ONLY_CURRENT`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from exporter import metrics as m

AMOUNT_KEYS = frozenset({"total", "subTotal", "base", "proration", "amount"})
RENAMED = {"paasUsage": "paas", "byocUsage": "byoc"}
# What only the current contract has: an invoice status, a credit balance.
ONLY_CURRENT = frozenset(
    spec.name
    for spec in (
        m.INVOICE_STATUS,
        m.CREDIT_AVAILABLE,
        m.CREDIT_PENDING,
        m.CREDIT_GRANT_AVAILABLE,
        m.CREDIT_GRANT_PENDING,
        m.CUSTOMER_BALANCE,
        m.CREDIT_SYNCED,
    )
)


def major(cents: float) -> float:
    """Cents as the current contract writes them: the exact decimal, in major units."""
    return float(Decimal(repr(cents)) / 100)


def to_current(doc: Any, *, in_price: bool = False) -> Any:
    """A legacy document as the current contract would say it: ``paas``/``byoc`` for
    ``paasUsage``/``byocUsage``, amounts in major units, ``status`` for ``paid``."""
    if isinstance(doc, list):
        return [to_current(item) for item in doc]
    if not isinstance(doc, dict):
        return doc
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "paid":
            out["status"] = None if value is None else "paid" if value else "open"
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = major(value) if in_price or key in AMOUNT_KEYS else value
        else:
            out[RENAMED.get(key, key)] = to_current(value, in_price=key == "price")
    return out


def cost_lines(text: str) -> dict[str, list[str]]:
    """The sample lines of each cost family (``family -> lines``) in an exposition."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in m.COST_NAMES:
            found.setdefault(name, []).append(line)
    return found
