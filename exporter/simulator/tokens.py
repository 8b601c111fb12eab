"""Tokens: who a request's ``Authorization`` header is, and what ``GET /v1/auth`` says.

:func:`authorize` checks the bearer token against the simulator's tokens (401 for an
unknown or expired one, 403 for a forbidden one) and gives the :class:`Caller`: its
entity (``org`` or, for a single-team token, ``team``), its permissions (as the late
2026 pages name them) and its expiry.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter.simulator.model import Json
from exporter.simulator.views import ApiError

DEFAULT_TOKEN = "sim-token"  # noqa: S105 - a fixed demo token, not a secret
DEFAULT_ENTITY = ("org", "sim-org")  # what GET /v1/auth says the token belongs to

BILLING_READ = "Organisation > Admin > Billing > Read"  # as the late 2026 pages name it
TEAM_READ = "Organisation > Team > General > Read"
FULL_PERMISSIONS = (BILLING_READ, TEAM_READ, "Organisation > Admin > General > Read")
NO_BILLING_PERMISSIONS = (TEAM_READ, "Organisation > Admin > General > Read")


@dataclass(frozen=True)
class Caller:
    """Who a request's token is: what ``GET /v1/auth`` answers."""

    entity_type: str  # "org" or "team"
    entity_id: str
    permissions: tuple[str, ...] = FULL_PERMISSIONS
    expires_at: float | None = None  # Unix seconds; None: the token does not expire


def auth_view(caller: Caller) -> Json:
    """The ``data`` of ``GET /v1/auth`` (``expiresAt`` only for a token that expires)."""
    doc: Json = {
        "entityType": caller.entity_type,
        "entityId": caller.entity_id,
        "permissions": list(caller.permissions),
    }
    if caller.expires_at is not None:
        moment = datetime.fromtimestamp(caller.expires_at, UTC)
        doc["expiresAt"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return doc


def caller_of(
    entity: tuple[str, str],
    *,
    billing: bool = True,
    team_read: bool = True,
    expires_at: float | None = None,
) -> Caller:
    """A :class:`Caller` of ``entity`` with billing read (``billing``) and team read
    (``team_read``, "Organisation > Team > General > Read") or without."""
    permissions: tuple[str, ...] = FULL_PERMISSIONS if billing else NO_BILLING_PERMISSIONS
    if not team_read:
        permissions = tuple(p for p in permissions if p != TEAM_READ)
    return Caller(entity[0], entity[1], permissions, expires_at)


def authorize(
    authorization: str | None,
    now: float,
    *,
    token: str,
    no_billing_tokens: Collection[str] = (),
    forbidden_tokens: Collection[str] = (),
    entity: tuple[str, str] = DEFAULT_ENTITY,
    expires_at: float | None = None,
    team_read: bool = True,
) -> Caller:
    """The caller of a request's ``Authorization`` header at time ``now``: ``token``
    has every permission (but team read without ``team_read``), ``no_billing_tokens``
    all but billing read; a ``forbidden_tokens`` one is 403, any other 401, and every
    token 401 from ``expires_at`` on."""
    scheme, _, given = (authorization or "").partition(" ")
    given = given.strip()
    if not authorization:
        raise ApiError(401, "Missing API token")
    if scheme.lower() != "bearer":
        raise ApiError(401, "Invalid API token")
    if secrets.compare_digest(given.encode(), token.encode()):
        billing = True
    elif given in no_billing_tokens:
        billing = False
    elif given in forbidden_tokens:
        raise ApiError(403, f"Token lacks the permission {BILLING_READ}")
    else:
        raise ApiError(401, "Invalid API token")
    if expires_at is not None and now >= expires_at:
        raise ApiError(401, "API token expired")
    return caller_of(entity, billing=billing, team_read=team_read, expires_at=expires_at)
