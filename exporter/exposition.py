"""Snapshot -> metric families -> bytes. Pure functions; rendered once per poll.

The scrape path only picks one of the four pre-rendered bodies of an
:class:`Exposition`: text 0.0.4 or OpenMetrics, each plain or gzipped.

A family's sample lines are encoded once, into one block of bytes that both formats
share (they differ only in the counters' ``# HELP``/``# TYPE`` names and OpenMetrics'
``# EOF``), and deflated once; the bodies are those blocks laid end to end, never
copied into one string, and each gzip body one member made of the families' deflated
runs. Label strings are built once per team, project and resource and reused for each
of its dimensions; values are formatted as prometheus_client formats them. At 53,590
samples: 0.05 s for the families and 0.07 s to render (prometheus_client's own
encoders take 0.6 s or more, on every scrape), 9.9 MB for the four bodies (see
``BENCHMARKS.md``).

A sample of what ``/metrics`` says::

    # HELP northflank_team_cost PaaS cost of a team (polled from the Northflank API)
    # TYPE northflank_team_cost gauge
    northflank_team_cost{currency="usd",team="team-1",team_name="Platform"} 1234.56
    # HELP northflank_up 1 when the last poll succeeded in full, else 0
    # TYPE northflank_up gauge
    northflank_up 1.0
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

from exporter.snapshot import Cost, Snapshot

POLL_ERROR_REASONS = (
    "auth",
    "not_found",
    "rate_limited",
    "http",
    "timeout",
    "connection",
    "invalid_response",
)
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
POLLED = "(polled from the Northflank API)"
_INF = float("inf")


@dataclass(frozen=True)
class Health:
    """The exporter's own state, rendered beside the cost figures."""

    version: str
    up: bool = False
    last_success: float | None = None
    poll_duration: float | None = None
    poll_errors: Mapping[str, int] = field(default_factory=dict)
    api_requests: Mapping[tuple[str, str], int] = field(default_factory=dict)
    ratelimit_remaining: float | None = None
    token_entity: tuple[str, str] | None = None  # (entity type, entity ID) from GET /v1/auth
    token_expiry: float | None = None  # Unix time the token expires; None: never, or unknown


@dataclass(frozen=True)
class Body:
    """One format's bytes: ``parts`` laid end to end, and the same gzipped.

    The text and OpenMetrics bodies share their sample blocks (the same ``bytes``
    objects), so both cost the memory of one; the server sends the parts as they are
    (:attr:`plain` joins them, for ``--once`` and the tests).
    """

    parts: tuple[bytes, ...]
    gzipped: bytes

    @property
    def plain(self) -> bytes:
        return b"".join(self.parts)


@dataclass(frozen=True)
class Exposition:
    """The bodies ``/metrics`` hands out, and how many samples they hold."""

    text: Body
    openmetrics: Body
    samples: int


# --------------------------------------------------------------------------- families


def number(value: float) -> str:
    """A sample value as prometheus_client writes it (``1.0``, ``1.7592768e+09``, ``+Inf``)."""
    if value.__class__ is float and -_INF < value < _INF:
        # floatToGoString's own answer for a finite float, without its call overhead
        text = repr(value)
        if value <= 0 or text.find(".") <= 6:
            return text
    text = floatToGoString(value)  # type: ignore[no-untyped-call]
    return str(text)


def label_value(value: str) -> str:
    """Escape a label value: backslash, double quote and newline."""
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def labels(**pairs: str) -> str:
    """``a="1",b="2"`` in the order given, values escaped."""
    return ",".join(f'{name}="{label_value(value)}"' for name, value in pairs.items())


class Family:
    """One metric family: its header and its pre-rendered sample lines."""

    def __init__(self, name: str, documentation: str, kind: str = "gauge") -> None:
        self.name = name  # for a counter, without ``_total``
        self.kind = kind
        self.documentation = documentation
        self.sample_name = f"{name}_total" if kind == "counter" else name
        self.lines: list[str] = []
        self._encoded: Encoded | None = None

    def add(self, label_text: str, value: float | None) -> None:
        """Add a sample; ``None`` (a field the API left out) adds nothing."""
        if value is None:
            return
        if label_text:
            self.lines.append(f"{self.sample_name}{{{label_text}}} {number(value)}")
        else:
            self.lines.append(f"{self.sample_name} {number(value)}")

    def add_cost(self, parts: Family, label_text: str, cost: Cost) -> None:
        """The total here, each dimension in ``parts`` with a ``dimension`` label."""
        if cost.total is not None:
            self.lines.append(f"{self.sample_name}{{{label_text}}} {number(cost.total)}")
        parts.add_dimensions(label_text, cost.dimensions)

    def add_dimensions(self, label_text: str, dimensions: Iterable[tuple[str, float]]) -> None:
        """One sample per usage dimension, with a ``dimension`` label after ``label_text``."""
        name, lines = self.sample_name, self.lines
        for dimension, value in dimensions:
            lines.append(f'{name}{{{label_text},dimension="{dimension}"}} {number(value)}')

    def encoded(self) -> Encoded:
        """This family as both formats write it, plain and deflated: made once, then kept.

        The sample lines are released then (the encoded block holds them), so a family
        kept from poll to poll costs its bytes once, shared with the bodies rendered
        from it; adding samples after that is an error.
        """
        if self._encoded is None:
            self._encoded = Encoded.of(self)
            self.lines = []
        elif self.lines:
            raise RuntimeError(f"{self.name}: samples added after the family was rendered")
        return self._encoded


@dataclass(frozen=True)
class Encoded:
    """One family in both formats: the parts of each body, and a large one deflated.

    The formats differ only in a counter's ``# HELP``/``# TYPE`` names (and in the
    escaping of quotes in help texts): otherwise the parts, and their deflated bytes,
    are the same objects in both. A family of at least :data:`SMALL_PART` bytes is
    deflated here, once; smaller ones are deflated together with their neighbours at
    each render, where one run compresses them better and costs little.
    """

    samples: int
    text: tuple[bytes, ...]
    openmetrics: tuple[bytes, ...]
    text_deflated: bytes | None
    openmetrics_deflated: bytes | None

    @classmethod
    def of(cls, family: Family) -> Encoded:
        text_help = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        om_help = text_help.replace('"', '\\"')
        name, sample_name, kind = family.name, family.sample_name, family.kind
        text_head = f"# HELP {sample_name} {text_help}\n# TYPE {sample_name} {kind}\n".encode()
        om_head = f"# HELP {name} {om_help}\n# TYPE {name} {kind}\n".encode()
        block = ("\n".join(family.lines).encode(), b"\n") if family.lines else ()
        text = (text_head, *block)
        openmetrics = text if om_head == text_head else (om_head, *block)
        if sum(len(part) for part in text) < SMALL_PART:
            return cls(len(family.lines), text, openmetrics, None, None)
        text_deflated = _deflate(text)
        om_deflated = text_deflated if openmetrics is text else _deflate(openmetrics)
        return cls(len(family.lines), text, openmetrics, text_deflated, om_deflated)


def render(families: Iterable[Family]) -> Exposition:
    """The text and OpenMetrics bodies, plain and gzipped.

    Each family is encoded once (:meth:`Family.encoded`) into parts that both formats
    share; a body is its families' parts laid end to end, and its gzip body one member
    made of deflated runs: a large family's own (made once), and one run for each
    stretch of small families between them. Rendering families again (the exporter's
    own, every poll, beside cost families kept from the last good poll) costs only the
    small runs, the joining and the checksum.
    """
    text: list[bytes] = []
    openmetrics: list[bytes] = []
    deflated: tuple[list[bytes], list[bytes]] = ([], [])
    run: tuple[list[bytes], list[bytes]] = ([], [])  # small families' parts, not yet deflated
    samples = 0
    for family in families:
        encoded = family.encoded()
        samples += encoded.samples
        text += encoded.text
        openmetrics += encoded.openmetrics
        if encoded.text_deflated is None or encoded.openmetrics_deflated is None:
            run[0].extend(encoded.text)
            run[1].extend(encoded.openmetrics)
            continue
        _deflate_run(run, deflated)
        deflated[0].append(encoded.text_deflated)
        deflated[1].append(encoded.openmetrics_deflated)
    openmetrics.append(_EOF)
    _deflate_run(run, deflated)
    deflated[1].append(_EOF_DEFLATED)
    return Exposition(
        text=Body(_coalesce(text), _gzip_member(text, deflated[0])),
        openmetrics=Body(_coalesce(openmetrics), _gzip_member(openmetrics, deflated[1])),
        samples=samples,
    )


def _deflate_run(
    run: tuple[list[bytes], list[bytes]], deflated: tuple[list[bytes], list[bytes]]
) -> None:
    """Deflate the pending small families of both formats (once when they are the same)."""
    text, openmetrics = run
    if not text:
        return
    text_deflated = _deflate(text)
    same = len(text) == len(openmetrics) and all(
        a is b for a, b in zip(text, openmetrics, strict=True)
    )
    deflated[0].append(text_deflated)
    deflated[1].append(text_deflated if same else _deflate(openmetrics))
    text.clear()
    openmetrics.clear()


SMALL_PART = 64 * 1024


def _coalesce(parts: list[bytes]) -> tuple[bytes, ...]:
    """Join runs of small parts, leave large ones (shared between formats) alone."""
    out: list[bytes] = []
    small: list[bytes] = []
    for part in parts:
        if len(part) < SMALL_PART:
            small.append(part)
            continue
        if small:
            out.append(b"".join(small))
            small = []
        out.append(part)
    if small:
        out.append(b"".join(small))
    return tuple(out)


GZIP_LEVEL = 6
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, mtime 0, OS unknown
_DEFLATE_END = b"\x03\x00"  # an empty final block


def _deflate(parts: Iterable[bytes]) -> bytes:
    """Raw deflate of ``parts`` by a fresh compressor, ended by a sync flush (not final).

    The output depends on ``parts`` alone and ends on a byte boundary, so such runs can
    be laid end to end, in any order, into one valid deflate stream (0.4% larger than
    one run over the whole body, at 50,000 series).
    """
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [compressor.compress(part) for part in parts]
    out.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(out)


_EOF = b"# EOF\n"
_EOF_DEFLATED = _deflate([_EOF])


def _gzip_member(plain: list[bytes], deflated: list[bytes]) -> bytes:
    """One gzip member: header, the deflated runs, a final empty block, CRC and size."""
    crc, size = 0, 0
    for part in plain:
        crc = zlib.crc32(part, crc)
        size += len(part)
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return b"".join([_GZIP_HEADER, *deflated, _DEFLATE_END, trailer])


# --------------------------------------------------------------------------- cost families


def cost_families(snapshot: Snapshot) -> list[Family]:
    """Every family read from the API, for one snapshot."""
    inv = snapshot.invoice
    cur = labels(currency=inv.currency)
    out: list[Family] = []

    def single(name: str, doc: str, value: float | None, *, currency: bool = True) -> None:
        family = Family(name, f"{doc} {POLLED}")
        family.add(cur if currency else "", value)
        out.append(family)

    info = Family("northflank_invoice_info", "The invoice being polled")
    info.add(labels(currency=inv.currency, invoice_id=inv.id), 1)
    out.append(info)
    single(
        "northflank_invoice_period_start_timestamp_seconds",
        "Start of the invoice's billing period",
        inv.period_start,
        currency=False,
    )
    single(
        "northflank_invoice_period_end_timestamp_seconds",
        "End of the invoice's billing period",
        inv.period_end,
        currency=False,
    )
    single("northflank_invoice_amount", "Invoice total, with tax", inv.total)
    single("northflank_invoice_subtotal_amount", "Invoice subtotal", inv.subtotal)
    single("northflank_invoice_discount_amount", "Discounts on the invoice", inv.discount)
    single("northflank_invoice_tax_amount", "Tax on the invoice", inv.tax_amount)
    single("northflank_invoice_tax_ratio", "Tax rate (0.2 is 20%)", inv.tax_ratio, currency=False)
    single(
        "northflank_invoice_paid",
        "1 when the invoice is paid, else 0",
        None if inv.paid is None else float(inv.paid),
        currency=False,
    )

    item_total = Family("northflank_invoice_line_item_amount", f"Line item total {POLLED}")
    item_base = Family(
        "northflank_invoice_line_item_base_amount",
        f"Line item base amount before proration {POLLED}",
    )
    item_proration = Family(
        "northflank_invoice_line_item_proration_amount",
        f"Line item proration adjustment {POLLED}",
    )
    for item in inv.line_items:
        where = labels(currency=inv.currency, item=item.title)
        item_total.add(where, item.total)
        item_base.add(where, item.base)
        item_proration.add(where, item.proration)
    out += [item_total, item_base, item_proration]

    for scope, title, cost, dims in (
        ("byoc", "BYOC", inv.byoc, "vcpu, memory, gpu_memory, cluster"),
        ("paas", "PaaS", inv.paas, "cpu, memory, storage, gpu"),
    ):
        total = Family(f"northflank_{scope}_cost", f"{title} cost on the invoice {POLLED}")
        parts = Family(
            f"northflank_{scope}_dimension_cost",
            f"{title} cost by usage dimension ({dims}) {POLLED}",
        )
        if cost is not None:
            total.add_cost(parts, cur, cost)
        out += [total, parts]

    out.extend(_breakdown(snapshot, cur))
    out.extend(_unbilled(snapshot, cur))
    return out


def _unbilled(snapshot: Snapshot, cur: str) -> list[Family]:
    """Usage not yet invoiced, and the teams' budgets."""
    doc = "since the newest invoice's period end"
    total = Family("northflank_unbilled_cost", f"PaaS and BYOC usage {doc} {POLLED}")
    paas = Family(
        "northflank_unbilled_paas_dimension_cost",
        f"PaaS usage {doc}, by usage dimension {POLLED}",
    )
    byoc = Family(
        "northflank_unbilled_byoc_dimension_cost",
        f"BYOC usage {doc}, by usage dimension {POLLED}",
    )
    teams = Family("northflank_team_unbilled_cost", f"PaaS usage of a team {doc} {POLLED}")
    since = Family(
        "northflank_unbilled_since_timestamp_seconds", "Start of the summed usage window"
    )
    through = Family(
        "northflank_unbilled_through_timestamp_seconds", "End of the newest usage hour summed"
    )
    budget = Family("northflank_team_budget", "The budget set for a team (NORTHFLANK_BUDGETS)")
    figures = snapshot.unbilled
    if figures is not None:
        total.add(cur, figures.total)
        paas.add_dimensions(cur, figures.paas.dimensions)
        byoc.add_dimensions(cur, figures.byoc.dimensions)
        for row in figures.teams:
            teams.add(f"{cur},{labels(team=row.team_id, team_name=row.team_name)}", row.amount)
        since.add("", figures.since)
        through.add("", figures.through)
    for row in snapshot.budgets:
        budget.add(f"{cur},{labels(team=row.team_id, team_name=row.team_name)}", row.amount)
    return [total, paas, byoc, teams, since, through, budget]


def _breakdown(snapshot: Snapshot, cur: str) -> list[Family]:
    """Team, project, resource type and resource families."""
    what = {
        "team": "PaaS cost of a team",
        "project": "PaaS cost of a project",
        "resource_type": "PaaS cost of one resource type in a project",
        "resource": "PaaS cost of a resource",
    }
    fams = {
        level: (
            Family(f"northflank_{level}_cost", f"{doc} {POLLED}"),
            Family(f"northflank_{level}_dimension_cost", f"{doc}, by usage dimension {POLLED}"),
        )
        for level, doc in what.items()
    }
    team_total, team_parts = fams["team"]
    project_total, project_parts = fams["project"]
    type_total, type_parts = fams["resource_type"]
    res_total, res_parts = fams["resource"]
    esc = label_value
    for team in snapshot.teams:
        in_team = f'{cur},team="{esc(team.id)}"'
        where = f'{in_team},team_name="{esc(team.name)}"'
        team_total.add_cost(team_parts, where, team.cost)
        for project in team.projects:
            in_project = f'{in_team},project="{esc(project.id)}"'
            where = f'{in_project},project_name="{esc(project.name)}"'
            project_total.add_cost(project_parts, where, project.cost)
            for kind in project.resource_types:
                in_type = f'{in_project},resource_type="{esc(kind.resource_type)}"'
                type_total.add_cost(type_parts, in_type, kind.cost)
                for res in kind.resources:
                    where = f'{in_type},resource="{esc(res.id)}",resource_name="{esc(res.name)}"'
                    res_total.add_cost(res_parts, where, res.cost)
    return [family for pair in fams.values() for family in pair]


# --------------------------------------------------------------------------- own families


def own_families(health: Health) -> list[Family]:
    """The exporter's own metrics; they stay when the cost figures go stale."""
    up = Family("northflank_up", "1 when the last poll succeeded in full, else 0")
    up.add("", float(health.up))
    last = Family(
        "northflank_last_success_timestamp_seconds", "End of the last successful poll (Unix time)"
    )
    last.add("", health.last_success)
    duration = Family("northflank_poll_duration_seconds", "How long the last poll took")
    duration.add("", health.poll_duration)
    errors = Family("northflank_poll_errors", "Failed polls, by cause", "counter")
    for reason in sorted({*POLL_ERROR_REASONS, *health.poll_errors}):
        errors.add(labels(reason=reason), health.poll_errors.get(reason, 0))
    requests = Family(
        "northflank_api_requests",
        "Requests made to the Northflank API, by endpoint and HTTP status "
        "('error' when no answer came)",
        "counter",
    )
    for (endpoint, code), count in sorted(health.api_requests.items()):
        requests.add(labels(endpoint=endpoint, code=code), count)
    remaining = Family(
        "northflank_api_ratelimit_remaining", "Last x-ratelimit-remaining the API sent"
    )
    remaining.add("", health.ratelimit_remaining)
    build = Family("northflank_exporter_build_info", "Version of the exporter, value 1")
    build.add(labels(version=health.version), 1)
    token = Family(
        "northflank_token_info", "Who the API token belongs to (from GET /v1/auth), value 1"
    )
    if health.token_entity is not None:
        token.add(labels(entity_type=health.token_entity[0], entity_id=health.token_entity[1]), 1)
    expiry = Family(
        "northflank_token_expiry_timestamp_seconds",
        "When the API token expires (Unix time); no sample for a token that does not expire",
    )
    expiry.add("", health.token_expiry)
    return [up, last, duration, errors, requests, remaining, build, token, expiry]
