"""The legacy billing contract's reader: the "Get invoice" page we were first built on.

Amounts in cents (``from_cents`` makes them major units, exactly), the categories
``paasUsage`` and ``byocUsage``, an invoice's payment as ``paid`` (a boolean) with no
``status``. Lists page by ``per_page`` and ``cursor``, the breakdown by ``per_page`` and
``page`` (:mod:`exporter.api.paging`). Some accounts are "temporarily receiving the legacy
billing API contract"; ``removeLegacyFields=true`` asks them for the current one.

>>> invoice = DIALECT.invoice(
...     {"id": "inv-1", "paid": True, "paasUsage": {"price": {"total": 1234.5}, "teams": []}},
...     DIALECT.scale,
... )
>>> (invoice.paas.total, invoice.status, invoice.paid)
(12.345, None, True)
"""

from __future__ import annotations

from exporter.api.model import LEGACY
from exporter.api.read import JSON, Dialect, field, flag, from_cents


def payment(data: JSON) -> tuple[str | None, bool | None]:
    """No status in this contract; ``paid`` as it is."""
    return None, field(data, "paid", flag)


DIALECT = Dialect(LEGACY, "paasUsage", "byocUsage", from_cents, payment)
