"""Which billing contract an answer is in, and what to ask each contract with.

Northflank serves two billing contracts (the API notes, "Two contracts"). An answer is
told apart by its keys (:func:`classify`): ``paas``, ``byoc`` or an invoice ``status`` is
current; ``paasUsage``, ``byocUsage``, or a ``paid`` without ``status`` is legacy; both,
or neither where amounts are due, is neither, and fails as ``invalid_response`` with one
line naming the endpoint and the keys it had (never their values):

>>> classify("get_invoice", {"id": "inv-1", "paas": {}})
'current'
>>> classify("get_invoice", {"id": "inv-1", "currency": "usd"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
exporter.api.errors.InvalidResponseError: get_invoice: an answer in neither ... currency, id)

:class:`Contracts` is what the exporter asks for and accepts (``NORTHFLANK_API_CONTRACT``,
``NORTHFLANK_AMOUNT_UNIT``) and the contract it last saw, whose parameters the next
request carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from exporter.api.errors import InvalidResponseError
from exporter.api.model import CURRENT, LEGACY, Contract
from exporter.api.read import JSON, Dialect, Scale, as_major, from_cents

Mode = Literal["auto", "current", "legacy"]
Unit = Literal["auto", "cents", "major"]
PER_PAGE = 100  # the most the API gives per page, in either contract
LEVELS = ("teams", "projects", "resources")  # the current breakdown's levels, each paged
_CURRENT_KEYS = ("paas", "byoc", "status")
_LEGACY_KEYS = ("paasUsage", "byocUsage")


def classify(endpoint: str, data: JSON, where: str = "data") -> Contract:
    """The contract of one answer (an invoice, a list entry, a usage entry)."""
    current = any(key in data for key in _CURRENT_KEYS)
    legacy = any(key in data for key in _LEGACY_KEYS) or ("paid" in data and "status" not in data)
    if current and not legacy:
        return CURRENT
    if legacy and not current:
        return LEGACY
    which = "both" if current else "neither"
    keys = ", ".join(sorted(str(key) for key in data)) or "none"
    raise InvalidResponseError(
        endpoint,
        f"an answer in {which} billing contract{'s' if current else ''} (keys of {where}: {keys})",
    )


def classify_entries(endpoint: str, entries: list[object], key: str) -> Contract | None:
    """The one contract of a list's entries (``data.invoices``, ``data.usage``); None for
    an empty list. Entries in two contracts fail like an answer in both."""
    found: Contract | None = None
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue  # the reader says what is wrong with it
        contract = classify(endpoint, entry, f"data.{key}[{index}]")
        if found is not None and contract != found:
            raise InvalidResponseError(
                endpoint, f"entries in two billing contracts (data.{key}[{index}] is {contract})"
            )
        found = contract
    return found


@dataclass
class Contracts:
    """What to ask for and accept, and the contract last seen (one per exporter)."""

    mode: Mode = "auto"
    unit: Unit = "auto"
    last: Contract = CURRENT  # the parameters the next request carries (auto)

    @property
    def asking(self) -> Contract:
        """The contract whose parameters the next request carries."""
        return self.last if self.mode == "auto" else self.mode

    def accept(self, endpoint: str, contract: Contract) -> None:
        """Refuse an answer in a contract the settings rule out; remember the one seen."""
        if self.mode != "auto" and contract != self.mode:
            raise InvalidResponseError(
                endpoint,
                f"a {contract}-contract answer, and NORTHFLANK_API_CONTRACT is {self.mode}",
            )
        self.last = contract

    def scale(self, dialect: Dialect) -> Scale:
        """How the amounts of an answer in ``dialect`` become major units."""
        if self.unit == "auto":
            return dialect.scale
        return from_cents if self.unit == "cents" else as_major

    def common(self) -> dict[str, str]:
        """What every billing request carries: ``removeLegacyFields`` but in legacy mode."""
        return {} if self.mode == "legacy" else {"removeLegacyFields": "true"}

    def list_query(self, contract: Contract) -> dict[str, str]:
        """A list's page size in ``contract``'s name for it."""
        size = "perPage" if contract == CURRENT else "per_page"
        return {**self.common(), size: str(PER_PAGE)}

    def breakdown_query(self, contract: Contract) -> dict[str, str]:
        """The breakdown's page sizes: one per level (current) or one (legacy)."""
        if contract == LEGACY:
            return {**self.common(), "per_page": str(PER_PAGE)}
        return {**self.common(), **{f"{level}PerPage": str(PER_PAGE) for level in LEVELS}}
