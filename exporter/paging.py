"""The API's two paging schemes, and the stop rules that keep a page loop cheap.

Northflank's reference pages (June 2026 and later) page two ways:

* **lists** (``GET /v1/billing/invoices``, ``GET /v1/billing/usage``, ``GET /v1/teams``)
  by ``cursor``: ask again with the ``pagination.cursor`` the answer gave
  (:data:`CURSOR`); a ``page`` parameter is no longer read there;
* **the invoice breakdown** (``GET /v1/billing/invoices/{id}``) by ``page`` = 1, 2, ...
  (:data:`PAGE_NUMBER`); it has no ``cursor`` parameter, so a ``cursor`` in its
  answer is ignored.

Either way :func:`read_pages` follows ``hasNextPage`` and merges the pages
(:func:`merge_pages`). A page that repeats a cursor, a page that adds no entry the
earlier ones lacked, or a page past :data:`MAX_PAGES` raises
:class:`~exporter.errors.InvalidResponseError`: against an API that ignores the
parameter we send, the loop ends on the second page instead of spending the budget.

>>> merge_pages({"teams": [{"id": "a"}], "total": 5}, {"teams": [{"id": "b"}], "total": 5})
{'teams': [{'id': 'a'}, {'id': 'b'}], 'total': 5}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from exporter.errors import InvalidResponseError
from exporter.models import Pagination

JSON = dict[str, Any]
Query = dict[str, str]
PER_PAGE = 100  # the most the API gives per page
MAX_PAGES = 100  # 10,000 entries in one answer: past that, something is wrong
KEYS = ("id", "resourceType", "timestamp")  # what names an entry across pages


@dataclass(frozen=True)
class Scheme:
    """How to ask for the page after ``number - 1``."""

    name: str
    by_cursor: bool

    def next_query(self, query: Query, number: int, page: Pagination, endpoint: str) -> Query:
        if not self.by_cursor:
            return {**query, "page": str(number)}
        if not page.cursor:
            raise InvalidResponseError(endpoint, "hasNextPage is true but no cursor was given")
        return {**query, "cursor": page.cursor}


CURSOR = Scheme("cursor", by_cursor=True)
PAGE_NUMBER = Scheme("page", by_cursor=False)

Fetch = Callable[[Query], Awaitable[tuple[JSON, Pagination]]]


async def read_pages(fetch: Fetch, query: Query, scheme: Scheme, endpoint: str) -> JSON:
    """Every page of one answer, merged; ``fetch`` sends one request."""
    query = {**query, "per_page": str(PER_PAGE)}
    data, page = await fetch(query)
    entries = count_entries(data)
    cursors: set[str] = set()
    number = 1
    while page.has_next_page:
        number += 1
        if number > MAX_PAGES:
            raise InvalidResponseError(endpoint, f"more than {MAX_PAGES} pages")
        if scheme.by_cursor and page.cursor is not None:
            if page.cursor in cursors:
                raise InvalidResponseError(endpoint, f"page {number} repeats an earlier cursor")
            cursors.add(page.cursor)
        more, page = await fetch(scheme.next_query(query, number, page, endpoint))
        data = merge_pages(data, more)
        grown = count_entries(data)
        if grown <= entries:
            raise InvalidResponseError(
                endpoint, f"page {number} adds no entry to the pages before it"
            )
        entries = grown
    return data


def _key(item: object) -> object:
    """What identifies an array entry across pages, or None (an entry without identity)."""
    if isinstance(item, dict):
        for name in KEYS:
            value = item.get(name)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                return (name, value)
    return None


def count_entries(data: object) -> int:
    """How many identified entries an answer holds, at any depth."""
    if isinstance(data, dict):
        return sum(count_entries(value) for value in data.values())
    if isinstance(data, list):
        return sum((_key(item) is not None) + count_entries(item) for item in data)
    return 0


def merge_pages(first: JSON, later: JSON) -> JSON:
    """One page merged into the pages before it.

    Arrays of identified entries (by ``id``, ``resourceType`` or ``timestamp``) are
    joined, an entry seen before merged into its first appearance; everything else
    (totals, line items, BYOC, which every page repeats) keeps the first page's value.
    """
    merged = dict(first)
    for name, value in later.items():
        mine = merged.get(name)
        if isinstance(mine, dict) and isinstance(value, dict):
            merged[name] = merge_pages(mine, value)
        elif isinstance(mine, list) and isinstance(value, list):
            merged[name] = _merge_lists(mine, value)
        elif name not in merged:
            merged[name] = value
    return merged


def _merge_lists(mine: list[Any], more: list[Any]) -> list[Any]:
    index = {key: i for i, item in enumerate(mine) if (key := _key(item)) is not None}
    if not index and mine:  # not a paged array (line items): every page repeats it
        return mine
    out = list(mine)
    for item in more:
        key = _key(item)
        if key is None:
            continue
        if key in index:
            out[index[key]] = merge_pages(out[index[key]], item)
        else:
            index[key] = len(out)
            out.append(item)
    return out
