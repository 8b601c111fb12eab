"""Paging, in the API's three schemes, and the stop rules that keep a page loop cheap.

* **lists** (``GET /v1/billing/invoices``, ``GET /v1/billing/usage``), either contract:
  ask again with the ``pagination.cursor`` the answer gave while ``hasNextPage`` is true
  (:func:`by_cursor`);
* **the legacy breakdown** (``GET /v1/billing/invoices/{id}``): ``page`` = 1, 2, ...
  while ``hasNextPage``; a ``cursor`` in its answer is ignored (:func:`by_page_number`);
* **the current breakdown**: a page per level (``teamsPage``, ``projectsPage``,
  ``resourcesPage``); ``pagination`` holds an object per level (``{"teams":
  {"hasNextPage": true}}``), and a level it says nothing of is complete once its page
  comes back shorter than asked for (:func:`by_level`). Each later request asks the next
  page of every level still open, so a call costs as many requests as its longest level
  has pages.

Each merges the pages (:func:`merge_pages`). A page that repeats a cursor, a page that
adds nothing the earlier ones lacked where the server said there was more, or a page
past :data:`MAX_PAGES` raises :class:`~exporter.api.errors.InvalidResponseError`: against
an API that ignores the parameter we send, the loop ends on the second page instead of
spending the budget.

>>> merge_pages({"teams": [{"id": "a"}], "total": 5}, {"teams": [{"id": "b"}], "total": 5})
{'teams': [{'id': 'a'}, {'id': 'b'}], 'total': 5}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from exporter.api.contract import LEVELS, PER_PAGE
from exporter.api.errors import InvalidResponseError

JSON = dict[str, Any]
Query = dict[str, str]
MAX_PAGES = 100  # 10,000 entries in one answer: past that, something is wrong
KEYS = ("id", "resourceType", "timestamp")  # what names an entry across pages

Fetch = Callable[[Query], Awaitable[tuple[JSON, JSON | None]]]  # one request: data, pagination


def _flag(pagination: JSON | None, endpoint: str) -> bool:
    """``hasNextPage`` of a list's or the legacy breakdown's ``pagination``."""
    found = (pagination or {}).get("hasNextPage", False)
    if not isinstance(found, bool):
        raise InvalidResponseError(endpoint, "pagination.hasNextPage is not true or false")
    return found


def _cursor(pagination: JSON | None, endpoint: str) -> str:
    found = (pagination or {}).get("cursor")
    if found is None or found == "":
        raise InvalidResponseError(endpoint, "hasNextPage is true but no cursor was given")
    if not isinstance(found, str | int) or isinstance(found, bool):
        raise InvalidResponseError(endpoint, "pagination.cursor is not a string")
    return str(found)


def _next_number(number: int, endpoint: str) -> int:
    if number + 1 > MAX_PAGES:
        raise InvalidResponseError(endpoint, f"more than {MAX_PAGES} pages")
    return number + 1


async def by_cursor(
    fetch: Fetch, query: Query, data: JSON, pagination: JSON | None, endpoint: str
) -> JSON:
    """A list's pages after the first (``data``, ``pagination``), by cursor, merged."""
    entries, cursors, number = count_entries(data), set[str](), 1
    while _flag(pagination, endpoint):
        number = _next_number(number, endpoint)
        cursor = _cursor(pagination, endpoint)
        if cursor in cursors:
            raise InvalidResponseError(endpoint, f"page {number} repeats an earlier cursor")
        cursors.add(cursor)
        more, pagination = await fetch({**query, "cursor": cursor})
        data, entries = _grown(data, more, entries, number, endpoint)
    return data


async def by_page_number(
    fetch: Fetch, query: Query, data: JSON, pagination: JSON | None, endpoint: str
) -> JSON:
    """The legacy breakdown's pages after the first, by ``page``, merged."""
    entries, number = count_entries(data), 1
    while _flag(pagination, endpoint):
        number = _next_number(number, endpoint)
        more, pagination = await fetch({**query, "page": str(number)})
        data, entries = _grown(data, more, entries, number, endpoint)
    return data


def legacy_has_more(pagination: JSON | None, endpoint: str) -> bool:
    return _flag(pagination, endpoint)


def _grown(data: JSON, more: JSON, entries: int, number: int, endpoint: str) -> tuple[JSON, int]:
    merged = merge_pages(data, more)
    grown = count_entries(merged)
    if grown <= entries:
        raise InvalidResponseError(endpoint, f"page {number} adds no entry to the pages before it")
    return merged, grown


# --------------------------------------------------------------------------- per level


def open_levels(data: JSON, pagination: JSON | None, endpoint: str) -> dict[str, bool]:
    """The levels of a current breakdown page that have more: level -> whether the server
    said so (True) or the page came back full and said nothing (False)."""
    counts = level_counts(data)
    said = pagination if isinstance(pagination, dict) else {}
    found: dict[str, bool] = {}
    for level in LEVELS:
        entry = said.get(level)
        if isinstance(entry, dict) and "hasNextPage" in entry:
            more = entry["hasNextPage"]
            if not isinstance(more, bool):
                raise InvalidResponseError(
                    endpoint, f"pagination.{level}.hasNextPage is not true or false"
                )
            if more:
                found[level] = True
        elif counts[level] >= PER_PAGE:
            found[level] = False
    return found


async def by_level(
    fetch: Fetch, query: Query, data: JSON, pagination: JSON | None, endpoint: str
) -> JSON:
    """The current breakdown's pages after the first: the next page of every level still
    open at once, merged, until none is."""
    pending = open_levels(data, pagination, endpoint)
    number = 1
    while pending:
        number = _next_number(number, endpoint)
        more, pagination = await fetch(
            {**query, **{f"{level}Page": str(number) for level in pending}}
        )
        before, data = level_counts(data), merge_pages(data, more)
        after = level_counts(data)
        going = open_levels(more, pagination, endpoint)
        still = {}
        for level, claimed in pending.items():
            if after[level] <= before[level]:
                if claimed:
                    raise InvalidResponseError(
                        endpoint, f"page {number} of {level} adds no entry to the pages before it"
                    )
                continue  # the last page was exactly full: complete
            if level in going:
                still[level] = going[level]
        pending = still
    return data


def level_counts(data: object) -> dict[str, int]:
    """Entries of each level (``teams``, ``projects``, ``resources`` arrays) at any depth."""
    counts = dict.fromkeys(LEVELS, 0)
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(value, list):
                    if key in counts:
                        counts[key] += len(value)
                    stack.extend(value)
                elif isinstance(value, dict):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return counts


# --------------------------------------------------------------------------- merging


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
