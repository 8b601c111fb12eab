"""Paging, in the legacy contract's two schemes (the June 2026 reference pages) and
the current contract's.

Legacy: list endpoints (invoices, usage, teams) page by ``per_page`` and ``cursor``
(:func:`cursor_window`; a ``page`` parameter is ignored); the breakdowns (an invoice,
a usage hour) by ``per_page`` and ``page`` (:func:`page_number_window`; a ``cursor``
parameter is ignored, and the one in its answer is a decoy), cut by
:func:`page_invoice`.

Current (the late 2026 pages for the parameters; how an answer says a level has more
is the notes' [assumed] reading): lists page by ``perPage`` and ``cursor``
(:func:`current_window`; the usage list's cursor is a Unix timestamp:
:func:`timestamp_page`); a breakdown pages each level (teams, projects, resources) on
its own, ``{level}Page`` and ``{level}PerPage``, with a ``pagination`` object per
level (:func:`page_levels`).
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


def _page_size(
    query: Mapping[str, str], default_size: int, max_size: int, name: str = "per_page"
) -> int:
    """``per_page`` (or ``name``; default ``default_size``), capped at ``max_size``
    (100, as the API; tests lower it to force paging)."""
    if name not in query:
        return min(default_size, max_size)
    return min(_positive_int(query[name], name), max_size)


def current_window(
    query: Mapping[str, str], default_size: int, scope: str, max_size: int = MAX_PAGE_SIZE
) -> tuple[int, int]:
    """(offset, size) of the page a current list's query asks for: ``perPage`` and
    ``cursor`` (``per_page`` and ``page`` are ignored); 400 on a bad one."""
    size = _page_size(query, default_size, max_size, "perPage")
    offset = _decode_cursor(query["cursor"], scope) if query.get("cursor") else 0
    return offset, size


def timestamp_page(
    items: list[tuple[int, Any]], query: Mapping[str, str], default_size: int, max_size: int
) -> tuple[list[tuple[int, Any]], Json]:
    """The page of ``items`` ((start, ...) newest first) a current usage query asks for,
    and its ``pagination``: ``perPage`` of them from the ``cursor`` on, the cursor a
    Unix timestamp as a string (the start of the newest entry of the page; the answer
    gives the next page's); 400 on a bad one."""
    size = _page_size(query, default_size, max_size, "perPage")
    cursor = query.get("cursor")
    if cursor:
        try:
            newest = int(cursor)
        except ValueError:
            raise ApiError(400, "Invalid cursor: not a Unix timestamp") from None
        items = [item for item in items if item[0] <= newest]
    page, rest = items[:size], items[size:]
    return page, {
        "hasNextPage": bool(rest),
        "cursor": str(rest[0][0]) if rest else None,
        "count": len(page),
    }


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


LEVELS = ("teams", "projects", "resources")


def page_levels(
    paas: Json, query: Mapping[str, str], default_size: int, max_size: int = MAX_PAGE_SIZE
) -> Json:
    """Cut a current breakdown's ``paas`` (``teams[]``, or a single-team token's
    ``projects[]``; in place) down to one page per level; return ``pagination``.

    The levels are ``teams``, ``projects`` (at any depth) and ``resources`` (across
    the projects and resource types, in order); a level is present when the whole
    answer has that array at all. Each present level L has a window of its entries,
    flattened in document order: ``LPage`` (from 1) of ``LPerPage`` (default
    ``default_size``, capped at ``max_size``; 400 for a bad value). The page holds the
    entries in their level's window and every ancestor of a kept entry (with its whole
    price): a kept project has only its kept resources (``resourceTypes: []`` when
    none), a kept team its kept projects (``projects: []`` when none).
    """
    teams: list[Json] | None = paas.get("teams")
    tops: list[Json] = teams if teams is not None else [{"projects": paas.get("projects", [])}]
    has_projects = "projects" in paas or any("projects" in team for team in tops)
    projects = [(t, p) for t, team in enumerate(tops) for p in range(len(team.get("projects", ())))]
    resources = [
        (t, p, g, r)
        for t, p in projects
        for g, group in enumerate(tops[t]["projects"][p].get("resourceTypes", ()))
        for r in range(len(group["resources"]))
    ]
    has_resources = any(tops[t]["projects"][p].get("resourceTypes") for t, p in projects)
    pagination: Json = {}

    def window(level: str, entries: list[Any]) -> list[Any]:
        size = _page_size(query, default_size, max_size, f"{level}PerPage")
        name = f"{level}Page"
        page = _positive_int(query[name], name) if query.get(name) else 1
        kept = entries[(page - 1) * size : page * size]
        pagination[level] = {"hasNextPage": page * size < len(entries), "count": len(kept)}
        return kept

    kept_resources = set(window("resources", resources)) if has_resources else set()
    kept_projects = set(window("projects", projects)) if has_projects else set()
    kept_projects |= {(t, p) for t, p, _, _ in kept_resources}
    kept_teams = set(window("teams", list(range(len(tops))))) if teams is not None else {0}
    kept_teams |= {t for t, _ in kept_projects}
    pagination = {level: pagination[level] for level in LEVELS if level in pagination}

    def project(t: int, p: int) -> Json:
        entry: Json = tops[t]["projects"][p]
        if "resourceTypes" not in entry:
            return entry
        groups = []
        for g, group in enumerate(entry["resourceTypes"]):
            rs = [res for r, res in enumerate(group["resources"]) if (t, p, g, r) in kept_resources]
            if rs:
                groups.append({**group, "resources": rs})
        return {**entry, "resourceTypes": groups}

    def team(t: int) -> Json:
        entry: Json = tops[t]
        if "projects" not in entry:
            return entry
        count = len(entry["projects"])
        return {
            **entry,
            "projects": [project(t, p) for p in range(count) if (t, p) in kept_projects],
        }

    if teams is not None:
        paas["teams"] = [team(t) for t in range(len(teams)) if t in kept_teams]
    elif "projects" in paas:
        paas["projects"] = team(0)["projects"]
    return pagination
