"""The billing endpoints, each answer read into the model by its contract's reader.

For every answer: the request carries what :class:`~exporter.api.contract.Contracts`
says (``removeLegacyFields=true`` and the parameters of the contract last seen), the
answer is classified by its keys (:func:`~exporter.api.contract.classify`), followed to
its last page in its own contract's scheme (:mod:`exporter.api.paging`; a first page in
the other contract is asked again in its own parameters where that matters), and read
by that contract's :class:`~exporter.api.read.Dialect` into :mod:`exporter.api.model`.

One :class:`Billing` is one pass of reads (a poll, a check, a backfill span): its
answers must all be in one contract (:attr:`Billing.contract`), or it fails as
``invalid_response`` naming both.

    billing = Billing(client, contracts)
    newest = max(entry.rank for entry in (await billing.invoices()).entries)
    invoice = await billing.invoice("inv-2026-10", team_id="team-1")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from exporter.api import current, legacy, paging
from exporter.api.client import JSON, Client, segment
from exporter.api.contract import Contracts, classify, classify_entries
from exporter.api.errors import InvalidResponseError
from exporter.api.model import (
    CURRENT,
    LEGACY,
    Contract,
    Credit,
    Hour,
    Invoice,
    InvoiceList,
    TeamInfo,
    Token,
    Usage,
)
from exporter.api.read import Bad, Dialect, obj, team_info, token

T = TypeVar("T")
DIALECTS: dict[Contract, Dialect] = {LEGACY: legacy.DIALECT, CURRENT: current.DIALECT}
OLDER_API = (
    "the invoice list has no invoice IDs: this account answers with Northflank's older "
    "billing API (the one the JS client 0.9.5 describes), which has no invoice breakdown "
    "by ID and no usage endpoint; the exporter needs the current billing API"
)


def read(endpoint: str, make: Callable[[], T]) -> T:
    """``make()``, a reader's :class:`~exporter.api.read.Bad` as ``invalid_response``."""
    try:
        return make()
    except Bad as bad:
        raise InvalidResponseError(endpoint, f"unexpected answer at {bad}") from None


class Billing:
    """The billing endpoints for one pass of reads, in one contract."""

    def __init__(self, client: Client, contracts: Contracts) -> None:
        self.client = client
        self.contracts = contracts
        self.contract: Contract | None = None  # of this pass's answers, once one came

    @property
    def offers_totals(self) -> bool:
        """Whether the server is likely to sum a usage window itself (``granularity=total``):
        it answered in the current contract last."""
        return self.contracts.asking == CURRENT

    # ----------------------------------------------------------------- endpoints

    async def invoices(self, *, newest_only: bool = False) -> InvoiceList:
        """``GET /v1/billing/invoices``: every finalized invoice (cursor-paged); with
        ``newest_only``, a current answer's first page only (it lists newest first)."""
        entries, contract = await self._list(
            "list_invoices",
            "/v1/billing/invoices",
            {},
            "invoices",
            first_page_of=CURRENT if newest_only else None,
        )
        dialect = DIALECTS[contract or self.contracts.asking]
        scale = self.contracts.scale(dialect)
        return InvoiceList(
            each("list_invoices", "invoices", entries, lambda e: dialect.entry(e, scale)), contract
        )

    async def invoice(
        self,
        invoice_id: str,
        *,
        team_id: str | None = None,
        project_id: str | None = None,
        resource_type: str | None = None,
    ) -> Invoice:
        """``GET /v1/billing/invoices/{id}``, unfiltered or filtered as the arguments say."""
        filters = _filters(team_id, project_id, resource_type)
        path = f"/v1/billing/invoices/{segment(invoice_id)}"
        data, contract = await self._breakdown("get_invoice", path, filters)
        dialect = DIALECTS[contract]
        return read("get_invoice", lambda: dialect.invoice(data, self.contracts.scale(dialect)))

    async def hour(
        self,
        timestamp: float,
        *,
        team_id: str | None = None,
        project_id: str | None = None,
        resource_type: str | None = None,
    ) -> Hour:
        """``GET /v1/billing/usage/{timestamp}``: the hour starting then, broken down,
        unfiltered or filtered (and paged) as an invoice is."""
        filters = _filters(team_id, project_id, resource_type)
        path = f"/v1/billing/usage/{int(timestamp)}"
        data, contract = await self._breakdown("get_usage", path, filters)
        dialect = DIALECTS[contract]
        return read("get_usage", lambda: dialect.hour(data, self.contracts.scale(dialect)))

    async def usage(
        self,
        start: float,
        *,
        end: float | None = None,
        team_id: str | None = None,
        project_id: str | None = None,
        total: bool = False,
    ) -> Usage:
        """``GET /v1/billing/usage`` (or the team's): hours starting at or after ``start``
        and before ``end``, or with ``total`` one entry for the whole window (a legacy
        server ignores ``granularity`` and answers hours: :attr:`Usage.total` says which).

        ``startTime`` is sent in whole seconds rounded down and ``endTime`` rounded up; an
        hour outside the window that this lets through is the caller's to drop.
        """
        path = f"/v1/teams/{segment(team_id)}/billing/usage" if team_id else "/v1/billing/usage"
        query = {"startTime": str(math.floor(start))}
        if end is not None:
            query["endTime"] = str(math.ceil(end))
        if project_id is not None:
            query["projectId"] = project_id
        if total:
            query["granularity"] = "total"
        entries, contract = await self._list("list_usage", path, query, "usage")
        dialect = DIALECTS[contract or self.contracts.asking]
        scale = self.contracts.scale(dialect)
        is_total = total and contract != LEGACY
        if is_total and len(entries) > 1:
            raise InvalidResponseError(
                "list_usage", f"granularity=total answered with {len(entries)} entries, not one"
            )
        read_entries = each("list_usage", "usage", entries, lambda e: dialect.usage_entry(e, scale))
        return Usage(read_entries, contract, is_total)

    async def credit(self, team_id: str | None = None) -> Credit:
        """``GET /v1/billing/credit-balance`` (or the team's): the current contract only
        (a legacy account answers 404)."""
        path = (
            f"/v1/teams/{segment(team_id)}/billing/credit-balance"
            if team_id
            else "/v1/billing/credit-balance"
        )
        data, _ = await self.client.get("credit_balance", path, self.contracts.common())
        scale = self.contracts.scale(current.DIALECT)
        return read("credit_balance", lambda: current.credit(data, scale))

    async def token(self) -> Token:
        """``GET /v1/auth``: whose token this is, and when it expires."""
        data, _ = await self.client.get("auth", "/v1/auth", {})
        return read("auth", lambda: token(data))

    async def team(self, team_id: str) -> TeamInfo:
        """``GET /v1/teams/{teamId}``: the team's name."""
        data, _ = await self.client.get("get_team", f"/v1/teams/{segment(team_id)}", {})
        return read("get_team", lambda: team_info(data))

    # ----------------------------------------------------------------- contracts

    def _seen(self, endpoint: str, contract: Contract) -> None:
        """One answer's contract: accepted by the settings, the same as this pass's."""
        self.contracts.accept(endpoint, contract)
        if self.contract is None:
            self.contract = contract
        elif contract != self.contract:
            raise InvalidResponseError(
                endpoint,
                f"answers in two billing contracts in one poll: this one {contract}, "
                f"earlier ones {self.contract}",
            )

    def _entries(self, endpoint: str, data: JSON, key: str) -> Contract | None:
        entries = data.get(key)
        if not isinstance(entries, list):
            raise InvalidResponseError(endpoint, f"unexpected answer: no '{key}' array in data")
        if key == "invoices" and any(isinstance(e, dict) and "id" not in e for e in entries):
            raise InvalidResponseError(endpoint, OLDER_API)
        contract = classify_entries(endpoint, entries, key)
        if contract is not None:
            self._seen(endpoint, contract)
        return contract

    # ----------------------------------------------------------------- paging

    async def _list(
        self,
        endpoint: str,
        path: str,
        query: dict[str, str],
        key: str,
        first_page_of: Contract | None = None,
    ) -> tuple[list[object], Contract | None]:
        """Every page of a list, in the contract its first page came in (only the first
        page when that contract is ``first_page_of``)."""
        asked = self.contracts.asking
        first = {**query, **self.contracts.list_query(asked)}
        data, pagination = await self.client.get(endpoint, path, first)
        found = self._entries(endpoint, data, key)
        if found is not None and found == first_page_of:
            return data[key], found

        async def fetch(page: dict[str, str]) -> tuple[JSON, JSON | None]:
            nonlocal found
            more, more_pagination = await self.client.get(endpoint, path, page)
            found = self._entries(endpoint, more, key) or found
            return more, more_pagination

        later = {**query, **self.contracts.list_query(found or asked)}
        merged = await paging.by_cursor(fetch, later, data, pagination, endpoint)
        return merged[key], found

    async def _breakdown(
        self, endpoint: str, path: str, filters: dict[str, str]
    ) -> tuple[JSON, Contract]:
        """Every page of a breakdown (an invoice, an hour), in its contract's scheme."""
        asked = self.contracts.asking
        query = {**filters, **self.contracts.breakdown_query(asked)}
        data, pagination = await self.client.get(endpoint, path, query)
        contract = classify(endpoint, data)
        self._seen(endpoint, contract)

        async def fetch(page: dict[str, str]) -> tuple[JSON, JSON | None]:
            more, more_pagination = await self.client.get(endpoint, path, page)
            self._seen(endpoint, classify(endpoint, more))
            return more, more_pagination

        if contract == LEGACY:
            if contract != asked and paging.legacy_has_more(pagination, endpoint):
                # asked in the current contract's sizes: the legacy pages came at the
                # server's own size, so page 2 at per_page=100 would skip entries
                query = {**filters, **self.contracts.breakdown_query(contract)}
                data, pagination = await fetch(query)
            return await paging.by_page_number(fetch, query, data, pagination, endpoint), contract
        if contract != asked and paging.open_levels(data, pagination, endpoint):
            query = {**filters, **self.contracts.breakdown_query(contract)}
            data, pagination = await fetch(query)
        return await paging.by_level(fetch, query, data, pagination, endpoint), contract


def _filters(
    team_id: str | None, project_id: str | None, resource_type: str | None
) -> dict[str, str]:
    """A breakdown's filters, as the API names them (the ones given only)."""
    given = (("teamId", team_id), ("projectId", project_id), ("resourceType", resource_type))
    return {key: value for key, value in given if value is not None}


def each(
    endpoint: str, key: str, entries: list[object], make: Callable[[JSON], T]
) -> tuple[T, ...]:
    """``make`` of every entry of a list (``data.invoices``, ``data.usage``)."""
    out = []
    for index, entry in enumerate(entries):
        try:
            out.append(make(obj(entry)))
        except Bad as bad:
            where = bad.at(f"[{index}]").at(key)
            raise InvalidResponseError(endpoint, f"unexpected answer at {where}") from None
    return tuple(out)
