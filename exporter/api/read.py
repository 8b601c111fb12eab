"""From an answer's JSON to the model: what both contracts' readers share.

The two contracts share one shape under different names (``paasUsage``/``paas``,
``byocUsage``/``byoc``, ``paid``/``status``) and units (cents, major units). A
:class:`Dialect` is what one contract calls things and how it says an invoice is paid;
:mod:`exporter.api.legacy` and :mod:`exporter.api.current` each define theirs, and the
functions here read an answer in a dialect, with a ``scale`` that turns its amounts into
major units (:func:`from_cents` or :func:`as_major`).

Tolerant where the API may grow (fields it adds are ignored, fields it leaves out are
None, resource types are whatever strings it sends), strict where a value is there:
an amount that is not a finite number, an ID that is not a non-empty string, a list that
is not a list, two entries with one ID, or a string that cannot be UTF-8 (a lone
surrogate) make the answer invalid. :class:`Bad` names where, on its way out:

>>> try:
...     prices({"price": {"total": "12"}}, "price", PAAS_KEYS, as_major)
... except Bad as bad:
...     print(bad)
price.total: expected a number, got str
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from exporter.api import model
from exporter.api.model import NO_PRICE, Price

JSON = dict[str, Any]
Scale = Callable[[float | int], float]
# (the API's key, the dimension's name in the model and the metrics)
PAAS_KEYS = (("cpu", "cpu"), ("memory", "memory"), ("storage", "storage"), ("gpu", "gpu"))
BYOC_KEYS = (
    ("vcpu", "vcpu"),
    ("memory", "memory"),
    ("gpuMemory", "gpu_memory"),
    ("cluster", "cluster"),
)
_EXACT = float(2**53)


class Bad(Exception):
    """A value of the wrong shape; :meth:`at` prefixes where it was, outermost last."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []

    def at(self, part: str) -> Bad:
        self.path.append(part)
        return self

    def __str__(self) -> str:
        where = "".join(
            part if part.startswith("[") or not index else f".{part}"
            for index, part in enumerate(reversed(self.path))
        )
        return f"{where or 'data'}: {self.message}"


def as_major(value: float | int) -> float:
    """An amount already in major units."""
    return float(value)


def from_cents(value: float | int) -> float:
    """Cents in major units, exactly as the decimal would be: ``1234.5`` -> ``12.345``
    (not ``1234.5 / 100``, which is 12.344999999999999 in binary floating point), and an
    integer past 2**53 divided as the integer it is.

    >>> from_cents(1234.5), from_cents(7.0), from_cents(0.25), from_cents(2**53 + 1)
    (12.345, 0.07, 0.0025, 90071992547409.94)
    """
    if isinstance(value, int):
        return value / 100  # Python divides integers correctly rounded, whatever their size
    if value.is_integer() and -_EXACT < value < _EXACT:
        return value / 100  # both exact: one correctly rounded division
    return float(Fraction(repr(value)) / 100)


def exact(value: float) -> Fraction:
    """An amount as the exact decimal its shortest text is (``0.07`` -> 7/100), so that
    sums of major units are the same as sums of the cents they came from."""
    if isinstance(value, int) or value.is_integer():
        return Fraction(int(value))
    return Fraction(repr(value))


# --------------------------------------------------------------------------- values


def obj(value: object) -> JSON:
    if value.__class__ is not dict:
        raise Bad(f"expected an object, got {_kind(value)}")
    return value


def array(value: object) -> list[Any]:
    if value.__class__ is not list:
        raise Bad(f"expected an array, got {_kind(value)}")
    return value


def text(value: object) -> str | None:
    """A string that can go into a label or a URL (no lone surrogates), or None."""
    if value is None:
        return None
    if value.__class__ is not str:
        raise Bad(f"expected a string, got {_kind(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Bad("a string that is not valid UTF-8") from None
    return value


def ident(value: object) -> str:
    """An ID: a non-empty string."""
    found = text(value)
    if not found:
        raise Bad("expected a non-empty ID string" if found is None else "an empty ID")
    return found


def finite(value: object) -> float | int | None:
    """A finite number (an integer, as exact as JSON gave it, or a float; not a
    boolean), or None."""
    cls = value.__class__
    if cls is float:
        if math.isfinite(value):  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        raise Bad("not a finite number")
    if cls is int:
        try:
            float(value)  # type: ignore[arg-type]
        except OverflowError:
            raise Bad("a number too large") from None
        return value  # type: ignore[return-value]
    if value is None:
        return None
    raise Bad(f"expected a number, got {_kind(value)}")


def number(value: object) -> float | None:
    """A finite number as a float (times, percentages), or None."""
    found = finite(value)
    return None if found is None else float(found)


def amount(value: object, scale: Scale) -> float | None:
    """An amount in major units, scaled from its exact value (an integer's too), or None."""
    found = finite(value)
    return None if found is None else scale(found)


def flag(value: object) -> bool | None:
    if value is None or value.__class__ is bool:
        return value
    raise Bad(f"expected true or false, got {_kind(value)}")


def unix_seconds(value: object) -> float | None:
    """A time as Unix seconds: numbers as they are (past the year 5000 taken as
    milliseconds), ISO 8601 strings with a time zone (``2027-01-01T00:00:00.000Z``)."""
    if value.__class__ is str:
        try:
            when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise Bad("expected a date-time (ISO 8601) or Unix seconds") from None
        if when.tzinfo is None:
            raise Bad("a time without a time zone")
        return when.timestamp()
    seconds = number(value)
    if seconds is not None and seconds > 1e11:
        return seconds / 1000
    return seconds


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def field(data: JSON, key: str, read: Callable[[object], Any]) -> Any:
    """``read(data[key])``, naming ``key`` when it is bad."""
    try:
        return read(data.get(key))
    except Bad as bad:
        raise bad.at(key) from None


# --------------------------------------------------------------------------- prices


def price(value: object, keys: tuple[tuple[str, str], ...], scale: Scale) -> Price:
    """A price object: ``total`` and the dimensions it has (None: no price at all)."""
    if value is None:
        return NO_PRICE
    raw = obj(value)
    dimensions = []
    for key, name in keys:
        found = raw.get(key)
        if found is not None:
            try:
                dimensions.append((name, scale(finite(found))))  # type: ignore[arg-type]
            except Bad as bad:
                raise bad.at(key) from None
    return Price(field(raw, "total", lambda v: amount(v, scale)), tuple(dimensions))


def prices(data: JSON, key: str, keys: tuple[tuple[str, str], ...], scale: Scale) -> Price | None:
    """``data[key]`` as a price; None when there is none."""
    value = data.get(key)
    if value is None:
        return None
    try:
        return price(value, keys, scale)
    except Bad as bad:
        raise bad.at(key) from None


def category_price(
    data: JSON, key: str, keys: tuple[tuple[str, str], ...], scale: Scale
) -> Price | None:
    """The ``price`` of the category ``data[key]`` (``paas``, ``byocUsage`` ...)."""
    part = data.get(key)
    if part is None:
        return None
    try:
        return prices(obj(part), "price", keys, scale)
    except Bad as bad:
        raise bad.at(key) from None


# --------------------------------------------------------------------------- the breakdown


def _unique(seen: set[str], ident_: str, what: str) -> str:
    if ident_ in seen:
        raise Bad(f"{what} {ident_!r} appears twice")
    seen.add(ident_)
    return ident_


def resources(value: object, scale: Scale) -> tuple[model.Resource, ...]:
    out = []
    seen: set[str] = set()
    for index, item in enumerate(array(value)):
        try:
            raw = obj(item)
            rid = _unique(seen, field(raw, "id", ident), "resource")
            name = field(raw, "name", text) or ""
            out.append(model.Resource(rid, name, _paas(raw, scale)))
        except Bad as bad:
            raise bad.at(f"[{index}]").at("resources") from None
    return tuple(out)


def resource_types(value: object, scale: Scale) -> tuple[model.ResourceType, ...]:
    out = []
    seen: set[str] = set()
    for index, item in enumerate(array(value)):
        try:
            raw = obj(item)
            kind = _unique(seen, field(raw, "resourceType", ident), "resource type")
            found = raw.get("resources")
            listed = () if found is None else resources(found, scale)
            out.append(model.ResourceType(kind, _paas(raw, scale), listed))
        except Bad as bad:
            raise bad.at(f"[{index}]").at("resourceTypes") from None
    return tuple(out)


def projects(value: object, scale: Scale) -> tuple[model.Project, ...]:
    out = []
    seen: set[str] = set()
    for index, item in enumerate(array(value)):
        try:
            raw = obj(item)
            pid = _unique(seen, field(raw, "id", ident), "project")
            found = raw.get("resourceTypes")
            types = None if found is None else resource_types(found, scale)
            name = field(raw, "name", text) or ""
            out.append(model.Project(pid, name, _paas(raw, scale), types))
        except Bad as bad:
            raise bad.at(f"[{index}]").at("projects") from None
    return tuple(out)


def teams(value: object, scale: Scale) -> tuple[model.Team, ...]:
    out = []
    seen: set[str] = set()
    for index, item in enumerate(array(value)):
        try:
            raw = obj(item)
            tid = _unique(seen, field(raw, "id", ident), "team")
            found = raw.get("projects")
            listed = None if found is None else projects(found, scale)
            name = field(raw, "name", text) or ""
            out.append(model.Team(tid, name, _paas(raw, scale), listed))
        except Bad as bad:
            raise bad.at(f"[{index}]").at("teams") from None
    return tuple(out)


def _paas(raw: JSON, scale: Scale) -> Price:
    """An entry's PaaS ``price`` (no price: :data:`~exporter.api.model.NO_PRICE`)."""
    try:
        return price(raw.get("price"), PAAS_KEYS, scale)
    except Bad as bad:
        raise bad.at("price") from None


# --------------------------------------------------------------------------- dialects


@dataclass(frozen=True)
class Dialect:
    """What one billing contract calls things, and how it says an invoice is paid."""

    contract: model.Contract
    paas: str  # the PaaS category's key
    byoc: str  # the BYOC category's key
    scale: Scale  # its amounts into major units (unless NORTHFLANK_AMOUNT_UNIT says else)
    payment: Callable[[JSON], tuple[str | None, bool | None]]  # (status, paid)

    def invoice(self, data: JSON, scale: Scale) -> model.Invoice:
        """``data`` of ``GET .../invoices/{id}``: totals, line items, the breakdown."""
        status, paid = self.payment(data)
        tax = obj_or_empty(data, "tax")
        paas, listed, at_projects = self._breakdown(data, scale)
        return model.Invoice(
            id=field(data, "id", ident),
            currency=field(data, "currency", text) or "",
            period_start=_period(data, "start"),
            period_end=_period(data, "end"),
            status=status,
            paid=paid,
            total=field(data, "total", lambda v: amount(v, scale)),
            subtotal=field(data, "subTotal", lambda v: amount(v, scale)),
            discount=nested(data, "discounts", "total", lambda v: amount(v, scale)),
            tax_amount=nested(data, "tax", "amount", lambda v: amount(v, scale)),
            tax_percent=field(tax, "percent", number) if tax else None,
            line_items=field(data, "lineItems", lambda v: line_items(v, scale)),
            paas=paas,
            byoc=category_price(data, self.byoc, BYOC_KEYS, scale),
            teams=None if at_projects else listed,  # type: ignore[arg-type]
            projects=listed if at_projects else None,  # type: ignore[arg-type]
            contract=self.contract,
        )

    def hour(self, data: JSON, scale: Scale) -> model.Hour:
        """``data`` of ``GET /v1/billing/usage/{timestamp}``: one hour, broken down."""
        stamp = field(data, "timestamp", number)
        if stamp is None:
            raise Bad("required").at("timestamp")
        paas, listed, at_projects = self._breakdown(data, scale)
        return model.Hour(
            timestamp=stamp,
            currency=field(data, "currency", text) or "",
            paas=paas,
            byoc=category_price(data, self.byoc, BYOC_KEYS, scale),
            teams=None if at_projects else listed,  # type: ignore[arg-type]
            projects=listed if at_projects else None,  # type: ignore[arg-type]
            contract=self.contract,
        )

    def _breakdown(
        self, data: JSON, scale: Scale
    ) -> tuple[Price | None, tuple[model.Team, ...] | tuple[model.Project, ...], bool]:
        """(PaaS price, teams or projects, whether the answer starts at projects)."""
        part = data.get(self.paas)
        if part is None:
            return None, (), False
        try:
            raw = obj(part)
            paas = prices(raw, "price", PAAS_KEYS, scale)
            if "projects" in raw and "teams" not in raw:  # a single-team token's answer
                return paas, projects(raw["projects"], scale), True
            found = raw.get("teams")
            return paas, (() if found is None else teams(found, scale)), False
        except Bad as bad:
            raise bad.at(self.paas) from None

    def entry(self, data: JSON, scale: Scale) -> model.InvoiceEntry:
        """One entry of the invoice list."""
        status, paid = self.payment(data)
        return model.InvoiceEntry(
            id=field(data, "id", ident),
            currency=field(data, "currency", text),
            period_start=_period(data, "start"),
            period_end=_period(data, "end"),
            status=status,
            paid=paid,
            total=field(data, "total", lambda v: amount(v, scale)),
            subtotal=field(data, "subTotal", lambda v: amount(v, scale)),
            paas=category_price(data, self.paas, PAAS_KEYS, scale),
            byoc=category_price(data, self.byoc, BYOC_KEYS, scale),
        )

    def usage_entry(self, data: JSON, scale: Scale) -> model.UsageEntry:
        """One entry of the usage list."""
        stamp = field(data, "timestamp", number)
        if stamp is None:
            raise Bad("required").at("timestamp")
        return model.UsageEntry(
            stamp,
            category_price(data, self.paas, PAAS_KEYS, scale),
            category_price(data, self.byoc, BYOC_KEYS, scale),
        )


def obj_or_empty(data: JSON, key: str) -> JSON:
    found = data.get(key)
    return {} if found is None else field(data, key, obj)


def nested(data: JSON, key: str, inner: str, read: Callable[[object], Any]) -> Any:
    part = obj_or_empty(data, key)
    try:
        return field(part, inner, read) if part else None
    except Bad as bad:
        raise bad.at(key) from None


def _period(data: JSON, end: str) -> float | None:
    return nested(data, "period", end, number)  # type: ignore[no-any-return]


def line_items(value: object, scale: Scale) -> tuple[model.LineItem, ...]:
    if value is None:
        return ()
    out = []
    for index, item in enumerate(array(value)):
        try:
            raw = obj(item)
            out.append(
                model.LineItem(
                    field(raw, "title", text) or "",
                    field(raw, "total", lambda v: amount(v, scale)),
                    field(raw, "base", lambda v: amount(v, scale)),
                    field(raw, "proration", lambda v: amount(v, scale)),
                )
            )
        except Bad as bad:
            raise bad.at(f"[{index}]") from None
    return tuple(out)


# --------------------------------------------------------------------------- either contract


def token(data: JSON) -> model.Token:
    """``data`` of ``GET /v1/auth``."""
    listed = data.get("permissions")
    permissions = () if listed is None else field(data, "permissions", array)
    return model.Token(
        entity_type=field(data, "entityType", text),
        entity_id=field(data, "entityId", text),
        expires_at=field(data, "expiresAt", unix_seconds),
        permissions=tuple(p for p in permissions if isinstance(p, str)),
    )


def team_info(data: JSON) -> model.TeamInfo:
    """``data`` of ``GET /v1/teams/{teamId}``."""
    team_id = field(data, "id", ident)
    return model.TeamInfo(team_id, field(data, "name", text) or team_id)
