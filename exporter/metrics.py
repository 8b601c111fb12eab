"""Every metric family, declared once: name, help, type, labels.

The cost families are filled from a :class:`~exporter.snapshot.Snapshot` by
:func:`exporter.families.cost_families` and written by our encoder
(:mod:`exporter.encoding`); the exporter's own are prometheus_client metrics in their own
registry (:class:`exporter.own.OwnMetrics`). Tests, benchmarks and the chart's checks
import the names from here.

A sample of what ``/metrics`` says::

    # HELP northflank_team_cost PaaS cost of a team (polled from the Northflank API)
    # TYPE northflank_team_cost gauge
    northflank_team_cost{currency="usd",team="team-1",team_name="Platform"} 1234.56
    # HELP northflank_up 1 when the last poll succeeded in full, else 0
    # TYPE northflank_up gauge
    northflank_up 1.0
"""

from __future__ import annotations

from typing import Literal

from exporter.api.model import BYOC_DIMENSIONS, PAAS_DIMENSIONS
from exporter.encoding import Spec

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
    INVOICE_STATUS,
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
    PROJECT_UNBILLED_COST,
    PROJECT_UNBILLED_DIMENSION_COST,
    RESOURCE_TYPE_UNBILLED_COST,
    RESOURCE_TYPE_UNBILLED_DIMENSION_COST,
    RESOURCE_UNBILLED_COST,
    RESOURCE_UNBILLED_DIMENSION_COST,
    UNBILLED_BREAKDOWN_THROUGH,
    TEAM_BUDGET,
    CREDIT_AVAILABLE,
    CREDIT_PENDING,
    CREDIT_GRANT_AVAILABLE,
    CREDIT_GRANT_PENDING,
    CUSTOMER_BALANCE,
    CREDIT_SYNCED,
)
OWN = (
    UP,
    LAST_SUCCESS,
    POLL_DURATION,
    POLL_ERRORS,
    API_REQUESTS,
    RATELIMIT_REMAINING,
    RATELIMIT_WAIT,
    BUILD_INFO,
    API_CONTRACT,
    TOKEN_INFO,
    TOKEN_EXPIRY,
)
# How often each cost family changes, which says when its bytes are encoded again
# (SEGMENTS: COST in runs of one kind, in order): "read", the invoice's breakdown as read
# once (a finalized invoice's figures do not change); "month", this month broken down
# (when an hour is added); "live", what may change at every poll: the invoice's payment,
# the spend not yet invoiced, the budgets, the credit.
LIVE = frozenset(
    {
        INVOICE_PAID,
        INVOICE_STATUS,
        UNBILLED_COST,
        UNBILLED_PAAS_DIMENSION_COST,
        UNBILLED_BYOC_DIMENSION_COST,
        TEAM_UNBILLED_COST,
        UNBILLED_SINCE,
        UNBILLED_THROUGH,
        TEAM_BUDGET,
        CREDIT_AVAILABLE,
        CREDIT_PENDING,
        CREDIT_GRANT_AVAILABLE,
        CREDIT_GRANT_PENDING,
        CUSTOMER_BALANCE,
        CREDIT_SYNCED,
    }
)
MONTH_FAMILIES = frozenset(
    {
        PROJECT_UNBILLED_COST,
        PROJECT_UNBILLED_DIMENSION_COST,
        RESOURCE_TYPE_UNBILLED_COST,
        RESOURCE_TYPE_UNBILLED_DIMENSION_COST,
        RESOURCE_UNBILLED_COST,
        RESOURCE_UNBILLED_DIMENSION_COST,
        UNBILLED_BREAKDOWN_THROUGH,
    }
)
Kind = Literal["read", "month", "live"]


def kind(spec: Spec) -> Kind:
    return "live" if spec in LIVE else "month" if spec in MONTH_FAMILIES else "read"


def _segments(specs: tuple[Spec, ...]) -> tuple[tuple[Kind, tuple[Spec, ...]], ...]:
    runs: list[tuple[Kind, list[Spec]]] = []
    for spec in specs:
        if runs and runs[-1][0] == kind(spec):
            runs[-1][1].append(spec)
        else:
            runs.append((kind(spec), [spec]))
    return tuple((of, tuple(run)) for of, run in runs)


SEGMENTS = _segments(COST)  # (kind, families) in COST order
# Names as scraped (a counter with ``_total``): what tests and benchmarks look for.
COST_NAMES = frozenset(spec.sample_name for spec in COST)
OWN_NAMES = frozenset(spec.sample_name for spec in OWN)
