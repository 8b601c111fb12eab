"""Every metric family, declared once (name, help, type, labels), and what fills it.

The cost families are filled from a :class:`~exporter.snapshot.Snapshot` by
:func:`cost_families` and written by our encoder (:mod:`exporter.encoding`). The
exporter's own are prometheus_client metrics in their own registry
(:class:`OwnMetrics`), filled from a :class:`Health` and rendered by prometheus_client.
Tests, benchmarks and the chart's checks import the names from here.

A sample of what ``/metrics`` says::

    # HELP northflank_team_cost PaaS cost of a team (polled from the Northflank API)
    # TYPE northflank_team_cost gauge
    northflank_team_cost{currency="usd",team="team-1",team_name="Platform"} 1234.56
    # HELP northflank_up 1 when the last poll succeeded in full, else 0
    # TYPE northflank_up gauge
    northflank_up 1.0
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter.encoding import Family, Spec, label_value, labels
from exporter.errors import REASONS
from exporter.models import BYOC_DIMENSIONS, PAAS_DIMENSIONS
from exporter.snapshot import Cost, Snapshot

POLLED = "(polled from the Northflank API)"
# Label names are sorted, the order prometheus_client writes them in, and ours.
CUR = ("currency",)
TEAM = ("currency", "team", "team_name")
PROJECT = ("currency", "project", "project_name", "team")
RESOURCE_TYPE = ("currency", "project", "resource_type", "team")
RESOURCE = ("currency", "project", "resource", "resource_name", "resource_type", "team")
UNBILLED = "since the newest invoice's period end"


def _by_dimension(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted((*names, "dimension")))


def _polled(name: str, help: str, labels: tuple[str, ...] = CUR) -> Spec:
    return Spec(name, f"{help} {POLLED}", "gauge", labels)


# --------------------------------------------------------------------------- the invoice

INVOICE_INFO = Spec(
    "northflank_invoice_info", "The invoice being polled", "gauge", (*CUR, "invoice_id")
)
INVOICE_PERIOD_START = _polled(
    "northflank_invoice_period_start_timestamp_seconds", "Start of the invoice's billing period", ()
)
INVOICE_PERIOD_END = _polled(
    "northflank_invoice_period_end_timestamp_seconds", "End of the invoice's billing period", ()
)
INVOICE_AMOUNT = _polled("northflank_invoice_amount", "Invoice total, with tax")
INVOICE_SUBTOTAL = _polled("northflank_invoice_subtotal_amount", "Invoice subtotal")
INVOICE_DISCOUNT = _polled("northflank_invoice_discount_amount", "Discounts on the invoice")
INVOICE_TAX = _polled("northflank_invoice_tax_amount", "Tax on the invoice")
INVOICE_TAX_RATIO = _polled("northflank_invoice_tax_ratio", "Tax rate (0.2 is 20%)", ())
INVOICE_PAID = _polled("northflank_invoice_paid", "1 when the invoice is paid, else 0", ())
LINE_ITEM = _polled("northflank_invoice_line_item_amount", "Line item total", (*CUR, "item"))
LINE_ITEM_BASE = _polled(
    "northflank_invoice_line_item_base_amount",
    "Line item base amount before proration",
    (*CUR, "item"),
)
LINE_ITEM_PRORATION = _polled(
    "northflank_invoice_line_item_proration_amount",
    "Line item proration adjustment",
    (*CUR, "item"),
)
BYOC_COST = _polled("northflank_byoc_cost", "BYOC cost on the invoice")
BYOC_DIMENSION_COST = _polled(
    "northflank_byoc_dimension_cost",
    f"BYOC cost by usage dimension ({', '.join(BYOC_DIMENSIONS)})",
    _by_dimension(CUR),
)
PAAS_COST = _polled("northflank_paas_cost", "PaaS cost on the invoice")
PAAS_DIMENSION_COST = _polled(
    "northflank_paas_dimension_cost",
    f"PaaS cost by usage dimension ({', '.join(PAAS_DIMENSIONS)})",
    _by_dimension(CUR),
)

INVOICE_STATUS = Spec(
    "northflank_invoice_status",
    f"The invoice's payment status as the API gives it, value 1 {POLLED}",
    "gauge",
    ("status",),
)

# --------------------------------------------------------------------------- the breakdown

TEAM_COST = _polled("northflank_team_cost", "PaaS cost of a team", TEAM)
TEAM_DIMENSION_COST = _polled(
    "northflank_team_dimension_cost", "PaaS cost of a team, by usage dimension", _by_dimension(TEAM)
)
PROJECT_COST = _polled("northflank_project_cost", "PaaS cost of a project", PROJECT)
PROJECT_DIMENSION_COST = _polled(
    "northflank_project_dimension_cost",
    "PaaS cost of a project, by usage dimension",
    _by_dimension(PROJECT),
)
RESOURCE_TYPE_COST = _polled(
    "northflank_resource_type_cost", "PaaS cost of one resource type in a project", RESOURCE_TYPE
)
RESOURCE_TYPE_DIMENSION_COST = _polled(
    "northflank_resource_type_dimension_cost",
    "PaaS cost of one resource type in a project, by usage dimension",
    _by_dimension(RESOURCE_TYPE),
)
RESOURCE_COST = _polled("northflank_resource_cost", "PaaS cost of a resource", RESOURCE)
RESOURCE_DIMENSION_COST = _polled(
    "northflank_resource_dimension_cost",
    "PaaS cost of a resource, by usage dimension",
    _by_dimension(RESOURCE),
)

# --------------------------------------------------------------------------- not yet invoiced

UNBILLED_COST = _polled("northflank_unbilled_cost", f"PaaS and BYOC usage {UNBILLED}")
UNBILLED_PAAS_DIMENSION_COST = _polled(
    "northflank_unbilled_paas_dimension_cost",
    f"PaaS usage {UNBILLED}, by usage dimension",
    _by_dimension(CUR),
)
UNBILLED_BYOC_DIMENSION_COST = _polled(
    "northflank_unbilled_byoc_dimension_cost",
    f"BYOC usage {UNBILLED}, by usage dimension",
    _by_dimension(CUR),
)
TEAM_UNBILLED_COST = _polled(
    "northflank_team_unbilled_cost", f"PaaS usage of a team {UNBILLED}", TEAM
)
UNBILLED_SINCE = Spec(
    "northflank_unbilled_since_timestamp_seconds", "Start of the summed usage window"
)
UNBILLED_THROUGH = Spec(
    "northflank_unbilled_through_timestamp_seconds", "End of the newest usage hour summed"
)
TEAM_BUDGET = Spec(
    "northflank_team_budget", "The budget set for a team (NORTHFLANK_BUDGETS)", "gauge", TEAM
)

# --------------------------------------------------------------------------- credit balance

CREDIT_AVAILABLE = _polled("northflank_credit_available_amount", "Credit available to spend now")
CREDIT_PENDING = _polled("northflank_credit_pending_amount", "Credit granted, not yet available")
CREDIT_GRANT_AVAILABLE = _polled(
    "northflank_credit_grant_available_amount", "Credit from grants available to spend now"
)
CREDIT_GRANT_PENDING = _polled(
    "northflank_credit_grant_pending_amount", "Credit from grants, not yet available"
)
CUSTOMER_BALANCE = _polled(
    "northflank_customer_balance_amount",
    "Customer balance: positive in the customer's favour, negative owed",
)
CREDIT_SYNCED = _polled(
    "northflank_credit_synced_timestamp_seconds", "When the credit balance was last synced", ()
)

# ------------------------------------------------------------------- this month, broken down

MONTH = "not yet invoiced, summed from settled hours"
PROJECT_UNBILLED_COST = _polled(
    "northflank_project_unbilled_cost", f"PaaS usage of a project {MONTH}", PROJECT
)
PROJECT_UNBILLED_DIMENSION_COST = _polled(
    "northflank_project_unbilled_dimension_cost",
    f"PaaS usage of a project {MONTH}, by usage dimension",
    _by_dimension(PROJECT),
)
RESOURCE_TYPE_UNBILLED_COST = _polled(
    "northflank_resource_type_unbilled_cost",
    f"PaaS usage of one resource type in a project {MONTH}",
    RESOURCE_TYPE,
)
RESOURCE_TYPE_UNBILLED_DIMENSION_COST = _polled(
    "northflank_resource_type_unbilled_dimension_cost",
    f"PaaS usage of one resource type in a project {MONTH}, by usage dimension",
    _by_dimension(RESOURCE_TYPE),
)
RESOURCE_UNBILLED_COST = _polled(
    "northflank_resource_unbilled_cost", f"PaaS usage of a resource {MONTH}", RESOURCE
)
RESOURCE_UNBILLED_DIMENSION_COST = _polled(
    "northflank_resource_unbilled_dimension_cost",
    f"PaaS usage of a resource {MONTH}, by usage dimension",
    _by_dimension(RESOURCE),
)
UNBILLED_BREAKDOWN_THROUGH = Spec(
    "northflank_unbilled_breakdown_through_timestamp_seconds",
    "End of the newest settled hour up to which the breakdown is summed without a gap",
)

# --------------------------------------------------------------------------- the exporter's own

UP = Spec("northflank_up", "1 when the last poll succeeded in full, else 0")
LAST_SUCCESS = Spec(
    "northflank_last_success_timestamp_seconds", "End of the last successful poll (Unix time)"
)
POLL_DURATION = Spec("northflank_poll_duration_seconds", "How long the last poll took")
POLL_ERRORS = Spec("northflank_poll_errors", "Failed polls, by cause", "counter", ("reason",))
API_REQUESTS = Spec(
    "northflank_api_requests",
    "Requests made to the Northflank API, by endpoint and HTTP status "
    "('error' when no answer came)",
    "counter",
    ("code", "endpoint"),
)
RATELIMIT_REMAINING = Spec(
    "northflank_api_ratelimit_remaining", "Last x-ratelimit-remaining the API sent"
)
BUILD_INFO = Spec(
    "northflank_exporter_build_info", "Version of the exporter, value 1", "gauge", ("version",)
)
TOKEN_INFO = Spec(
    "northflank_token_info",
    "Who the API token belongs to (from GET /v1/auth), value 1",
    "gauge",
    ("entity_id", "entity_type"),
)
API_CONTRACT = Spec(
    "northflank_api_contract_info",
    "The billing contract the last good poll read (current or legacy), value 1",
    "gauge",
    ("contract",),
)
RATELIMIT_WAIT = Spec(
    "northflank_api_ratelimit_wait_seconds",
    "Seconds spent waiting for the API's rate-limit window (budget or reserve)",
    "counter",
)
TOKEN_EXPIRY = Spec(
    "northflank_token_expiry_timestamp_seconds",
    "When the API token expires (Unix time); no sample for a token that does not expire",
)

COST = (
    INVOICE_INFO,
    INVOICE_PERIOD_START,
    INVOICE_PERIOD_END,
    INVOICE_AMOUNT,
    INVOICE_SUBTOTAL,
    INVOICE_DISCOUNT,
    INVOICE_TAX,
    INVOICE_TAX_RATIO,
    INVOICE_PAID,
    LINE_ITEM,
    LINE_ITEM_BASE,
    LINE_ITEM_PRORATION,
    BYOC_COST,
    BYOC_DIMENSION_COST,
    PAAS_COST,
    PAAS_DIMENSION_COST,
    TEAM_COST,
    TEAM_DIMENSION_COST,
    PROJECT_COST,
    PROJECT_DIMENSION_COST,
    RESOURCE_TYPE_COST,
    RESOURCE_TYPE_DIMENSION_COST,
    RESOURCE_COST,
    RESOURCE_DIMENSION_COST,
    UNBILLED_COST,
    UNBILLED_PAAS_DIMENSION_COST,
    UNBILLED_BYOC_DIMENSION_COST,
    TEAM_UNBILLED_COST,
    UNBILLED_SINCE,
    UNBILLED_THROUGH,
    TEAM_BUDGET,
)
OWN = (
    UP,
    LAST_SUCCESS,
    POLL_DURATION,
    POLL_ERRORS,
    API_REQUESTS,
    RATELIMIT_REMAINING,
    BUILD_INFO,
    TOKEN_INFO,
    TOKEN_EXPIRY,
)
# Names as scraped (a counter with ``_total``): what tests and benchmarks look for.
COST_NAMES = frozenset(spec.sample_name for spec in COST)
OWN_NAMES = frozenset(spec.sample_name for spec in OWN)


# --------------------------------------------------------------------------- cost families


def cost_families(snapshot: Snapshot) -> list[Family]:
    """Every family read from the API, filled from one snapshot, in :data:`COST` order."""
    families = {spec: Family(spec) for spec in COST}
    inv = snapshot.invoice
    currency = labels(currency=inv.currency)
    families[INVOICE_INFO].add(labels(currency=inv.currency, invoice_id=inv.id), 1)
    families[INVOICE_PERIOD_START].add("", inv.period_start)
    families[INVOICE_PERIOD_END].add("", inv.period_end)
    families[INVOICE_AMOUNT].add(currency, inv.total)
    families[INVOICE_SUBTOTAL].add(currency, inv.subtotal)
    families[INVOICE_DISCOUNT].add(currency, inv.discount)
    families[INVOICE_TAX].add(currency, inv.tax_amount)
    families[INVOICE_TAX_RATIO].add("", inv.tax_ratio)
    families[INVOICE_PAID].add("", None if inv.paid is None else float(inv.paid))
    for item in inv.line_items:
        where = labels(currency=inv.currency, item=item.title)
        families[LINE_ITEM].add(where, item.total)
        families[LINE_ITEM_BASE].add(where, item.base)
        families[LINE_ITEM_PRORATION].add(where, item.proration)
    if inv.byoc is not None:
        _cost(families, BYOC_COST, BYOC_DIMENSION_COST, currency, "", inv.byoc)
    if inv.paas is not None:
        _cost(families, PAAS_COST, PAAS_DIMENSION_COST, currency, "", inv.paas)
    _breakdown(families, snapshot, currency)
    _unbilled(families, snapshot, currency)
    return list(families.values())


def _cost(
    families: dict[Spec, Family], total: Spec, parts: Spec, currency: str, rest: str, cost: Cost
) -> None:
    """A cost's total in ``total``, each dimension in ``parts`` with a ``dimension`` label
    (which sorts between ``currency`` and the ``rest`` of the labels)."""
    families[total].add(f"{currency},{rest}" if rest else currency, cost.total)
    families[parts].add_dimensions(currency, rest, cost.dimensions)


def _breakdown(families: dict[Spec, Family], snapshot: Snapshot, currency: str) -> None:
    """Team, project, resource type and resource families; each entity's label text is
    built once and reused for its dimensions."""
    esc = label_value
    for team in snapshot.teams:
        team_id = f'team="{esc(team.id)}"'
        rest = f'{team_id},team_name="{esc(team.name)}"'
        _cost(families, TEAM_COST, TEAM_DIMENSION_COST, currency, rest, team.cost)
        for project in team.projects:
            project_id = f'project="{esc(project.id)}"'
            rest = f'{project_id},project_name="{esc(project.name)}",{team_id}'
            _cost(families, PROJECT_COST, PROJECT_DIMENSION_COST, currency, rest, project.cost)
            for kind in project.resource_types:
                kind_id = f'resource_type="{esc(kind.resource_type)}",{team_id}'
                rest = f"{project_id},{kind_id}"
                _cost(
                    families,
                    RESOURCE_TYPE_COST,
                    RESOURCE_TYPE_DIMENSION_COST,
                    currency,
                    rest,
                    kind.cost,
                )
                for res in kind.resources:
                    rest = (
                        f'{project_id},resource="{esc(res.id)}",'
                        f'resource_name="{esc(res.name)}",{kind_id}'
                    )
                    _cost(
                        families, RESOURCE_COST, RESOURCE_DIMENSION_COST, currency, rest, res.cost
                    )


def _unbilled(families: dict[Spec, Family], snapshot: Snapshot, currency: str) -> None:
    """Usage not yet invoiced, and the teams' budgets."""
    figures = snapshot.unbilled
    if figures is not None:
        families[UNBILLED_COST].add(currency, figures.total)
        families[UNBILLED_PAAS_DIMENSION_COST].add_dimensions(currency, "", figures.paas.dimensions)
        families[UNBILLED_BYOC_DIMENSION_COST].add_dimensions(currency, "", figures.byoc.dimensions)
        for row in figures.teams:
            where = f"{currency},{labels(team=row.team_id, team_name=row.team_name)}"
            families[TEAM_UNBILLED_COST].add(where, row.amount)
        families[UNBILLED_SINCE].add("", figures.since)
        families[UNBILLED_THROUGH].add("", figures.through)
    for row in snapshot.budgets:
        where = f"{currency},{labels(team=row.team_id, team_name=row.team_name)}"
        families[TEAM_BUDGET].add(where, row.amount)


# --------------------------------------------------------------------------- own metrics


@dataclass(frozen=True)
class Health:
    """The exporter's own state, what :class:`OwnMetrics` reports."""

    version: str
    up: bool = False
    last_success: float | None = None
    poll_duration: float | None = None
    poll_errors: Mapping[str, int] = field(default_factory=dict)
    api_requests: Mapping[tuple[str, str], int] = field(default_factory=dict)
    ratelimit_remaining: float | None = None
    token_entity: tuple[str, str] | None = None  # (entity type, entity ID) from GET /v1/auth
    token_expiry: float | None = None  # Unix time the token expires; None: never, or unknown


def _gauge(spec: Spec, value: float | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    if value is not None:
        family.add_metric((), value)
    return family


class OwnMetrics(Collector):
    """The exporter's own metrics, in a registry of their own: set :attr:`health`, render.

    Python's default process, platform and GC collectors are not in it.
    """

    def __init__(self, health: Health) -> None:
        self.health = health
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        health = self.health
        yield _gauge(UP, float(health.up))
        yield _gauge(LAST_SUCCESS, health.last_success)
        yield _gauge(POLL_DURATION, health.poll_duration)
        errors = CounterMetricFamily(POLL_ERRORS.name, POLL_ERRORS.help, labels=POLL_ERRORS.labels)
        for reason in sorted({*REASONS, *health.poll_errors}):
            errors.add_metric((reason,), health.poll_errors.get(reason, 0))
        yield errors
        requests = CounterMetricFamily(
            API_REQUESTS.name, API_REQUESTS.help, labels=API_REQUESTS.labels
        )
        for (endpoint, code), count in sorted(health.api_requests.items()):
            requests.add_metric((code, endpoint), count)
        yield requests
        yield _gauge(RATELIMIT_REMAINING, health.ratelimit_remaining)
        build = _gauge(BUILD_INFO)
        build.add_metric((health.version,), 1)
        yield build
        token = _gauge(TOKEN_INFO)
        if health.token_entity is not None:
            entity_type, entity_id = health.token_entity
            token.add_metric((entity_id, entity_type), 1)
        yield token
        yield _gauge(TOKEN_EXPIRY, health.token_expiry)

    def bodies(self) -> tuple[bytes, bytes, int]:
        """(text, OpenMetrics ending in ``# EOF``, samples), rendered by prometheus_client."""
        samples = sum(len(family.samples) for family in self.collect())
        openmetrics: bytes = generate_openmetrics(self.registry)  # type: ignore[no-untyped-call]
        return generate_latest(self.registry), openmetrics, samples
