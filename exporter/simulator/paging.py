"""Paging, in the API's two schemes (the June 2026 reference pages).

List endpoints (invoices, usage, teams) page by ``per_page`` and ``cursor``
(:func:`cursor_window`; a ``page`` parameter is ignored); the invoice breakdown by
``per_page`` and ``page`` (:func:`page_number_window`; a ``cursor`` parameter is
ignored, and the one in its answer is a decoy), cut by :func:`page_invoice`.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from typing import Any

from exporter.simulator.model import Json
from exporter.simulator.views import ApiError, InvoiceFilter

MAX_PAGE_SIZE = 100


def cursor_window(
    query: Mapping[str, str], default_size: int, scope: str, max_size: int = MAX_PAGE_SIZE
) -> tuple[int, int]:
    """(offset, size) of the page a list endpoint's query asks for: ``per_page`` and
    ``cursor`` (a ``page`` parameter is ignored: removed from the list pages in June
    2026); 400 on a bad ``per_page`` or cursor."""
    size = _page_size(query, default_size, max_size)
    offset = _decode_cursor(query["cursor"], scope) if query.get("cursor") else 0
    return offset, size


def page_number_window(
    query: Mapping[str, str], default_size: int, max_size: int = MAX_PAGE_SIZE
) -> tuple[int, int]:
    """(offset, size) of the page the invoice breakdown's query asks for: ``per_page``
    and ``page`` (1, 2, ...; a ``cursor`` parameter is ignored: it has none); 400 on a
    bad ``per_page`` or ``page``."""
    size = _page_size(query, default_size, max_size)
    page = _positive_int(query["page"], "page") if query.get("page") else 1
    return (page - 1) * size, size


def _page_size(query: Mapping[str, str], default_size: int, max_size: int) -> int:
    """``per_page`` (default ``default_size``), capped at ``max_size`` (100, as the API;
    tests lower it to force paging)."""
    if "per_page" not in query:
        return min(default_size, max_size)
    return min(_positive_int(query["per_page"], "per_page"), max_size)


def paginate(items: list[Any], offset: int, size: int, scope: str) -> Json:
    """Cut ``items`` down (in place) to one page; return the ``pagination`` object."""
    page = items[offset : offset + size]
    has_next = offset + size < len(items)
    items[:] = page
    return {
        "hasNextPage": has_next,
        "cursor": _encode_cursor(offset + size, scope) if has_next else None,
        "count": len(page),
    }


def _positive_int(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"Invalid {name}: not an integer") from None
    if value < 1:
        raise ApiError(400, f"Invalid {name}: must be at least 1")
    return value


def page_invoice(doc: Json, view: InvoiceFilter, offset: int, size: int, scope: str) -> Json:
    """Cut an invoice document (in place) down to one page; return ``pagination``.

    ``per_page`` counts what the filters make the breakdown of: teams (no ``teamId``),
    the team's projects (``teamId`` alone), or resources (``teamId`` with ``projectId``
    and/or ``resourceType``: every project's resources of the types, in order). The
    totals, line items, BYOC, and the team, project and resource type entries (with
    their whole prices) that hold a page's resources repeat on every page. The
    ``cursor`` is a decoy (the breakdown pages by ``page``; a cursor sent back is
    ignored).
    """
    teams: list[Json] = doc["paasUsage"]["teams"]
    if view.team_id is None:
        return paginate(teams, offset, size, scope)
    projects: list[Json] = teams[0]["projects"]
    if not view.narrows:
        return paginate(projects, offset, size, scope)
    flat = [
        (p, t, r)
        for p, project in enumerate(projects)
        for t, group in enumerate(project["resourceTypes"])
        for r in range(len(group["resources"]))
    ]
    window = flat[offset : offset + size]
    if flat:
        kept: dict[int, dict[int, list[int]]] = {}
        for p, t, r in window:
            kept.setdefault(p, {}).setdefault(t, []).append(r)
        teams[0]["projects"] = [
            {
                **projects[p],
                "resourceTypes": [
                    {
                        **projects[p]["resourceTypes"][t],
                        "resources": [projects[p]["resourceTypes"][t]["resources"][r] for r in rs],
                    }
                    for t, rs in types.items()
                ],
            }
            for p, types in kept.items()
        ]
    has_next = offset + size < len(flat)
    return {
        "hasNextPage": has_next,
        "cursor": _encode_cursor(offset + size, scope) if has_next else None,
        "count": len(window),
    }


def _encode_cursor(offset: int, scope: str) -> str:
    raw = json.dumps({"o": offset, "s": scope}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, scope: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ApiError(400, "Invalid cursor") from None
    if (
        not isinstance(decoded, dict)
        or decoded.get("s") != scope
        or not isinstance(decoded.get("o"), int)
        or decoded["o"] < 0
    ):
        raise ApiError(400, "Invalid cursor")
    offset: int = decoded["o"]
    return offset


def scope_of(path: str, query: Mapping[str, str]) -> str:
    """What a cursor belongs to: the path and the filters (not the page size)."""
    filters = sorted(
        (k, v) for k, v in query.items() if k in ("teamId", "projectId", "resourceType")
    )
    return f"{zlib.crc32(repr((path, filters)).encode()):08x}"
