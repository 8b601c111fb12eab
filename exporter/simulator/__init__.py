"""A faithful fake of the Northflank billing API, for the demo mode and the tests.

The simulator serves, over real HTTP on loopback, the endpoints the exporter reads:

* ``GET /v1/auth``: who the token is (``entityType`` ``org`` or ``team``,
  ``entityId``, ``permissions`` and, for a token that expires, ``expiresAt``);
* ``GET /v1/billing/invoices`` and ``GET /v1/teams/{teamId}/billing/invoices``:
  invoice summaries, in a shuffled (deterministic, never date-sorted) order;
* ``GET /v1/billing/invoices/{invoiceId}`` and
  ``GET /v1/teams/{teamId}/billing/invoices/{invoiceId}``: one invoice, with the query
  filters ``teamId``, ``projectId`` and ``resourceType`` behaving as the "Get invoice"
  reference page says (a filtered team price is only the filtered slice; BYOC is always
  customer-wide);
* ``GET /v1/billing/usage`` and ``GET /v1/teams/{teamId}/billing/usage``: hourly usage
  since the newest invoice (see below), newest first;
* ``GET /v1/teams``: the organisation's teams.

Which version of the public reference pages each behaviour follows:

* paging, two schemes (the June 2026 pages): the list endpoints (invoices, usage,
  teams) page by ``per_page`` (default 50, at most 100) and ``cursor`` only, a ``page``
  parameter is ignored (page 1 again); the invoice breakdown pages by ``page`` (1, 2,
  ...) and ``per_page`` only, a ``cursor`` parameter is ignored, and its answer's
  ``pagination.cursor`` is a decoy (non-null while ``hasNextPage``). ``per_page``
  counts what the filters make the breakdown of: teams (no ``teamId``), projects
  (``teamId``), resources (``teamId`` with ``projectId`` and/or ``resourceType``);
  totals, line items, BYOC and the entries holding a page's resources repeat on every
  page;
* the billing permission (the late 2026 pages): "Organisation > Admin > Billing > Read";
  a token of ``no_billing_tokens`` gets 403 naming it from every billing endpoint;
* resource types: the generator uses the seven of the June 2026 page
  (:data:`RESOURCE_TYPES`); later pages list ``job, service, addon, volume``, then
  ``harness`` (in :data:`KNOWN_RESOURCE_TYPES`); ``resourceType`` accepts a known type or
  any type a resource of the invoice has (:meth:`Organisation.add_resource` adds any);
* amounts are cents that may be fractional (0.5, 0.25: sums of a few halves and
  quarters are exact floats), ``period.start``/``period.end`` may be fractional seconds;
* the older billing API (what the JS client 0.9.5 describes), with
  ``Simulator(legacy_billing=True)``: list entries without ``id`` and ``currency``,
  404 from get-invoice-by-ID and the usage endpoints, and
  ``GET /v1/billing/invoices/details?timestamp=<unix>``: a preview invoice (the newest
  invoice's document without ``id``);
* the running hour (not documented; assumed, as the API notes say it may be): see below.

It checks ``Authorization: Bearer <token>`` (401 for an unknown or expired token, 403
for ``forbidden_tokens``), answers in the API's envelopes (``{"data": ...}``,
``{"error": {...}}``), sends the ``x-ratelimit-*`` headers on every response and
answers 429 once the window's requests are spent. Faults (errors, hangs, malformed
bodies, latency) can be switched on per request from Python, ``/v1/auth`` included.

The data is an :class:`Organisation` made by :func:`generate_organisation`: teams,
projects (whose IDs repeat across teams), resources of every resource type, and a few
monthly invoices. Only resource-level amounts are stored; every total (resource type,
project, team, PaaS, line items, tax, invoice) is derived from them when a request
comes, so a test can change a figure between two polls and every level stays consistent.

Hourly usage (the spend not yet invoiced): one entry per hour from the first whole hour
at or after the newest invoice's ``period.end`` (:func:`usage_since`), ``timestamp``
being the hour's start (Unix seconds, a multiple of 3600), newest first: every hour that
has ended by the simulator's ``clock`` and, with ``running_hour`` (the default), the
hour still running, partly filled: each team's figure per dimension is the full hour's
times the fraction of the hour elapsed, rounded to 1/1024 cent, the organisation's PaaS
figure the sum of its teams' and its BYOC figure the full one's times the fraction;
once the hour has ended it has its full figures. ``startTime`` (inclusive) and
``endTime`` (exclusive) select hours by their start. Each resource of the newest
invoice costs, per dimension and full hour, ``round(monthly cents * factor / 720)``,
the factor (0.5 .. 1.5) hashed from (team, resource ID, hour); a team's hour is the sum
of its resources (the team variant has only ``paasUsage``), the organisation's
``paasUsage`` the sum of its teams, its ``byocUsage`` the invoice's BYOC figures / 720.
Past usage (``Simulator(usage_history=True)``, ``--usage-history``): the hours from the
oldest invoice's ``period.end`` on, each priced as above from the invoice whose period
holds it (the hours between invoice N's end and invoice N+1's end from invoice N+1's
resources), so that a span's hours add up to about that invoice's PaaS and BYOC figures;
without it, hours before the newest invoice's end are not served (the window restarts).
:class:`ManualClock` moves time by hand, :meth:`Organisation.close_period` finalizes a
new invoice (the window restarts at its end) and :meth:`Organisation.render_usage` is
what the endpoints answer, unpaged (pass ``running_hour=False`` to match a simulator
without the running hour).

Use from Python (the tests)::

    with Simulator(generate_organisation(teams=2), page_size=10) as sim:
        sim.faults.fail(503, count=2)
        ...  # point the exporter at sim.url with token sim.token
        assert sim.count(path_prefix="/v1/billing/invoices/") == 3
        sim.org.set_resource_price(invoice_id, team_id, "web", resource_id, cpu=1234)
        expected = sim.org.render_invoice(invoice_id, team_id=team_id)  # what the API says

    clock = ManualClock(org.newest_invoice().period_end + 5.5 * 3600)
    with Simulator(org, clock=clock) as sim:  # five hours of usage have ended
        clock.advance(3600)  # six
        hours = sim.org.render_usage(now=clock(), team_id="team-1")

Use standalone (the demo mode, benchmarks)::

    python -m exporter.simulator --port 8000 --teams 10 --projects 5 --resources 2

which prints ``<url> <token>`` on one line and serves until SIGINT or SIGTERM
(``--help`` lists the options: seed, invoices, latency, page size, rate limit,
``--legacy-billing``, ``--no-running-hour``, ``--token-expires-in-days``,
``--fractional-cents`` ...).

It binds 127.0.0.1 by default, uses the standard library only and logs nothing per
request.

The package's modules, each importing only the ones above it in this list:

* :mod:`.model`: the data (dataclasses, resource types and dimensions, price helpers);
* :mod:`.usage`: hourly usage rates since an invoice (:class:`UsageRates`);
* :mod:`.org`: :class:`OrganisationData`, the data behind a lock, its cached sums and
  setters (:meth:`~OrganisationData.set_resource_price`, ``add_resource``,
  ``set_period``, ``close_period`` ...);
* :mod:`.hours`: which hours a usage call answers and each hour's figures (the running
  hour partly filled, the history before the newest invoice);
* :mod:`.views`: pure functions from the data to the API's documents (filter semantics,
  usage answers, ``/v1/auth``), raising :class:`ApiError`, and
  :class:`Organisation`: the data with the ``render_*`` methods tests compare against;
* :mod:`.generate`: :func:`generate_organisation`;
* :mod:`.paging`: the two paging schemes (cursor, page number) and the breakdown's cut;
* :mod:`.api`: the endpoints and routes (:class:`Api`, :class:`ApiMode`);
* :mod:`.faults`: injected :class:`Faults`, the rate limit, the responses on the wire;
* :mod:`.server`: HTTP (:class:`Simulator`, tokens, :class:`RequestRecord`,
  :class:`ManualClock`);
* :mod:`.cli`: ``main()``, i.e. ``python -m exporter.simulator``.

Everything public is re-exported here: import from ``exporter.simulator``.
"""

from exporter.simulator.api import Api, ApiMode
from exporter.simulator.cli import main
from exporter.simulator.faults import Faults
from exporter.simulator.generate import generate_organisation
from exporter.simulator.hours import (
    history_entries,
    pricing_invoice,
    running_fraction,
    usage_entries,
    usage_first_hour,
    usage_hours,
)
from exporter.simulator.model import (
    BYOC_DIMENSIONS,
    HOUR,
    KNOWN_RESOURCE_TYPES,
    PAAS_DIMENSIONS,
    RESOURCE_TYPES,
    Invoice,
    InvoiceTeam,
    LineItem,
    Project,
    Resource,
    Team,
    price_json,
)
from exporter.simulator.org import Aggregates, OrganisationData, aggregate
from exporter.simulator.paging import (
    MAX_PAGE_SIZE,
    cursor_window,
    page_invoice,
    page_number_window,
    paginate,
)
from exporter.simulator.server import (
    DEFAULT_ENTITY,
    DEFAULT_TOKEN,
    ManualClock,
    RequestRecord,
    Simulator,
)
from exporter.simulator.usage import UsageRates, usage_since
from exporter.simulator.views import (
    BILLING_READ,
    FULL_PERMISSIONS,
    NO_BILLING_PERMISSIONS,
    ApiError,
    Caller,
    InvoiceFilter,
    Organisation,
    auth_view,
    invoice_header,
    invoice_summary,
    invoice_view,
    team_json,
    usage_view,
)

__all__ = [
    "BILLING_READ",
    "BYOC_DIMENSIONS",
    "DEFAULT_ENTITY",
    "DEFAULT_TOKEN",
    "FULL_PERMISSIONS",
    "HOUR",
    "KNOWN_RESOURCE_TYPES",
    "MAX_PAGE_SIZE",
    "NO_BILLING_PERMISSIONS",
    "PAAS_DIMENSIONS",
    "RESOURCE_TYPES",
    "Aggregates",
    "Api",
    "ApiError",
    "ApiMode",
    "Caller",
    "Faults",
    "Invoice",
    "InvoiceFilter",
    "InvoiceTeam",
    "LineItem",
    "ManualClock",
    "Organisation",
    "OrganisationData",
    "Project",
    "RequestRecord",
    "Resource",
    "Simulator",
    "Team",
    "UsageRates",
    "aggregate",
    "auth_view",
    "cursor_window",
    "generate_organisation",
    "history_entries",
    "invoice_header",
    "invoice_summary",
    "invoice_view",
    "main",
    "page_invoice",
    "page_number_window",
    "paginate",
    "price_json",
    "pricing_invoice",
    "running_fraction",
    "team_json",
    "usage_entries",
    "usage_first_hour",
    "usage_hours",
    "usage_since",
    "usage_view",
]
