"""The current billing contract's reader (the late-2026 "Billing API" pages).

"All monetary values are decimal amounts in the response's currency, not minor units
such as cents": amounts are read as they are. The categories are ``paas`` and (our
reading) ``byoc``; an invoice's payment is a Stripe ``status`` (``open``, ``paid``,
``void``, ``uncollectible``, ``payment_failed``, an open set), ``paid`` being 1 when it
is ``paid``; lists page by ``perPage`` and ``cursor``, the breakdown a page per level
(:mod:`exporter.api.paging`); a single-team token's breakdown starts at ``projects``.
Only this contract has the credit balance (:func:`credit`).

>>> invoice = DIALECT.invoice(
...     {"id": "inv-1", "status": "open", "paas": {"price": {"total": 12.345}, "projects": []}},
...     DIALECT.scale,
... )
>>> (invoice.paas.total, invoice.status, invoice.paid, invoice.teams, invoice.projects)
(12.345, 'open', False, None, ())
"""

from __future__ import annotations

from exporter.api import model
from exporter.api.model import CURRENT
from exporter.api.read import (
    JSON,
    Dialect,
    Scale,
    amount,
    as_major,
    field,
    flag,
    nested,
    text,
    unix_seconds,
)


def payment(data: JSON) -> tuple[str | None, bool | None]:
    """``status`` as the API gives it; paid when it is ``paid`` (``paid`` itself, which
    the current contract may leave out, only when there is no status)."""
    status = field(data, "status", text)
    return status, (status == "paid") if status is not None else field(data, "paid", flag)


DIALECT = Dialect(CURRENT, "paas", "byoc", as_major, payment)


def credit(data: JSON, scale: Scale = as_major) -> model.Credit:
    """``data`` of ``GET /v1/billing/credit-balance``."""

    def money(part: str, key: str) -> float | None:
        return nested(data, part, key, lambda value: amount(value, scale))  # type: ignore[no-any-return]

    return model.Credit(
        currency=field(data, "currency", text),
        available=money("total", "available"),
        pending=money("total", "pending"),
        grant_available=money("grants", "available"),
        grant_pending=money("grants", "pending"),
        customer_balance=money("customerBalance", "amount"),
        synced_at=field(data, "lastSyncedAt", unix_seconds),
    )
