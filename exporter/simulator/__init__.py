"""A faithful fake of the Northflank billing API, for the demo mode and the tests.

The simulator serves, over real HTTP on loopback, the endpoints the exporter reads,
each billing one in both of Northflank's billing contracts (below):

* ``GET /v1/auth``: who the token is (``entityType`` ``org`` or ``team``,
  ``entityId``, ``permissions`` and, for a token that expires, ``expiresAt``);
* ``GET /v1/billing/invoices`` and ``GET /v1/teams/{teamId}/billing/invoices``:
  invoice summaries: legacy in a shuffled (deterministic, never date-sorted) order,
  current newest first (by ``period.end``, ties by ID, descending);
* ``GET /v1/billing/invoices/{invoiceId}`` and
  ``GET /v1/teams/{teamId}/billing/invoices/{invoiceId}``: one invoice, with the query
  filters ``teamId``, ``projectId`` and ``resourceType`` behaving as the "Get invoice"
  reference page says (a filtered team price is only the filtered slice; BYOC is always
  customer-wide);
* ``GET /v1/billing/usage`` and ``GET /v1/teams/{teamId}/billing/usage``: hourly usage
  since the newest invoice (see below), newest first; in the current contract also by
  ``granularity`` (``hour``, ``day``, ``month``, ``total``) and filtered by ``teamId``,
  ``projectId`` and ``resourceType`` (comma-separated lists);
* ``GET /v1/billing/usage/{timestamp}`` and its team variant: one hour (its start)
  broken down like an invoice, with the invoice's filters and paging;
* ``GET /v1/billing/credit-balance`` and its team variant: the credit balance (the
  current contract only);
* ``GET /v1/teams`` and ``GET /v1/teams/{teamId}``: the organisation's teams.

The two contracts (the notes' "Two contracts"; one organisation, stored in cents,
renders to both, so the same organisation gives the same figures either way):

* legacy (the page ``northflank-get-invoice.txt``, the June 2026 pages): amounts in
  cents, ``paasUsage``/``byocUsage``, an invoice's ``paid`` (bool), ``per_page`` with
  ``cursor`` (lists) or ``page`` (breakdowns); current (the late 2026 pages): amounts
  in major units, exactly ``cents / 100`` as a decimal (1234.5 cents is ``12.345``),
  ``paas``/``byoc``, an invoice's ``status`` (what Stripe reports: ``paid``, ``open``,
  ``payment_failed``, ``uncollectible``, ``void`` ...; the model stores it,
  :meth:`~OrganisationData.set_status`, and ``paid`` is ``status == "paid"``),
  ``perPage`` with ``cursor`` (the usage list's cursor a Unix timestamp), a page per
  level on breakdowns;
* ``Simulator(contract=...)``: ``"legacy"`` (the default) answers the legacy contract
  unless a request says ``removeLegacyFields=true`` (or ``1``), ``"current"`` always
  the current one, ``"legacy-pinned"`` always the legacy one (an account "temporarily
  receiving the legacy billing API contract"); ``endpoint_contracts`` overrides the
  mode per endpoint (``list_invoices``, ``get_invoice``, ``list_usage``,
  ``get_usage``, ``credit_balance``). Each contract ignores the other's parameters.
  ``python -m exporter.simulator`` serves ``--contract current`` unless told otherwise.

Which version of the public reference pages each behaviour follows, and where it is
the API notes' [assumed] reading:

* legacy paging, two schemes (the June 2026 pages): the list endpoints (invoices,
  usage, teams) page by ``per_page`` (default 50, at most 100) and ``cursor`` only, a
  ``page`` parameter is ignored (page 1 again); the breakdowns page by ``page`` (1, 2,
  ...) and ``per_page`` only, a ``cursor`` parameter is ignored, and its answer's
  ``pagination.cursor`` is a decoy (non-null while ``hasNextPage``). ``per_page``
  counts what the filters make the breakdown of: teams (no ``teamId``), projects
  (``teamId``), resources (``teamId`` with ``projectId`` and/or ``resourceType``);
  totals, line items, BYOC and the entries holding a page's resources repeat on every
  page;
* current paging (the parameters from the late 2026 pages; the rest [assumed]): each
  present level (``teams``, ``projects`` at any depth, ``resources`` counted across
  the answer's projects and resource types in order) has ``{level}Page`` (from 1) and
  ``{level}PerPage``; a page holds its levels' windows and every ancestor of a kept
  entry with its whole price (a kept project without kept resources shows
  ``resourceTypes: []``, a kept team without kept projects ``projects: []``), and
  ``pagination`` an object ``{hasNextPage, count}`` per present level;
* the current keys ``byoc`` [assumed] and ``paas`` [docs], the same ``price`` objects
  and hierarchy inside [assumed]; current list entries carry ``total``, ``subTotal``,
  ``paas.price``, ``byoc.price`` [assumed]; the usage list's ``day`` and ``total``
  granularities [assumed] (``total``: one entry ``{timestamp, startTime, endTime, paas,
  byoc}``, needing ``startTime``; ``Simulator(granularity_total=False)`` refuses it
  with a 400, as a server might); ``month`` at most 12 a page;
* single-team tokens (``Simulator(single_team="team-2")``; the late 2026 pages say
  ``teamId`` is not accepted from them, the rest [assumed]): ``GET /v1/auth`` says
  ``team``; current breakdowns start at the project level (``paas.projects``, no
  ``paas.teams``), ``teamId`` on any billing endpoint is 400, the usage list's
  organisation path has the team's PaaS usage (BYOC customer-wide); legacy
  breakdowns are a one-team invoice and take ``teamId`` (that team only: 403 for
  another, as is another team's path); list entries' PaaS price is the team's. The
  token's permissions lack team read with ``team_read=False`` (403 from the teams
  endpoints);
* the credit balance [docs, the whole page]: ``{currency, total{available, pending},
  grants{available, pending}, customerBalance{amount}, lastSyncedAt}`` in major units
  [assumed], ``total.available`` the grants available plus a positive customer
  balance, ``lastSyncedAt`` the clock's time to the second; 404 in the legacy contract
  [assumed] and for an organisation without one (``OrganisationData.credit`` None);
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
  invoice's document without ``id``); it answers the legacy contract whatever the mode;
* the running hour (not documented; [assumed], as the API notes say it may be): see
  below; the ``Date`` header (RFC 9110) of every answer, errors, 429s and faults
  included, is the simulator's clock, not the machine's.

It checks ``Authorization: Bearer <token>`` (401 for an unknown or expired token, 403
for ``forbidden_tokens``), answers in the API's envelopes (``{"data": ...}``,
``{"error": {...}}``), sends the ``x-ratelimit-*`` headers on every response and
answers 429 once the window's requests are spent. Faults (errors, hangs, malformed
bodies, latency) can be switched on per request from Python, ``/v1/auth`` included.

The data is an :class:`Organisation` made by :func:`generate_organisation`: teams,
projects (whose IDs repeat across teams), resources of every resource type, a few
monthly invoices and a credit balance. Only resource-level amounts are stored; every
total (resource type, project, team, PaaS, line items, tax, invoice) is derived from
them when a request comes, so a test can change a figure between two polls and every
level stays consistent.

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
A filtered hour sums the matching resources only; a day, month or span sums its hours.
The hour broken down (``GET /v1/billing/usage/{timestamp}``) prices every resource so
(the running hour's each times the fraction, rounded to 1/1024 cent), every level the
sum of its resources: a whole hour's teams equal the list's team figures exactly. It
answers 400 for a timestamp that is not an hour's start, 404 for an hour not started,
before the first usage hour, or running without ``running_hour``; the team path has no
BYOC (team usage is PaaS only).
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
        current = sim.org.render_invoice(invoice_id, contract="current")  # major units
        sim.org.set_status(invoice_id, "payment_failed")

    clock = ManualClock(org.newest_invoice().period_end + 5.5 * 3600)
    with Simulator(org, clock=clock, contract="current", single_team="team-1") as sim:
        clock.advance(3600)  # six hours have ended
        hours = sim.org.render_usage(now=clock(), contract="current", single_team="team-1")
        hour = sim.org.render_usage_hour(hours[1]["timestamp"], now=clock())

Every ``render_*`` method is whole (unpaged) and legacy unless given
``contract="current"``.

Use standalone (the demo mode, benchmarks)::

    python -m exporter.simulator --port 8000 --teams 10 --projects 5 --resources 2

which prints ``<url> <token>`` on one line and serves until SIGINT or SIGTERM
(``--help`` lists the options: seed, invoices, latency, page size, rate limit,
``--contract current|legacy|legacy-pinned``, ``--single-team TEAM_ID``,
``--no-granularity-total``, ``--no-credit``, ``--no-team-read``, ``--legacy-billing``,
``--no-running-hour``, ``--token-expires-in-days``, ``--fractional-cents`` ...).

It binds 127.0.0.1 by default, uses the standard library only and logs nothing per
request.

The package's modules, each importing only the ones above it in this list:

* :mod:`.model`: the data (dataclasses, resource types and dimensions, price helpers,
  invoice status, the credit balance);
* :mod:`.usage`: hourly usage rates since an invoice (:class:`UsageRates`), also of
  some projects' or resource types' resources, and every resource's hour;
* :mod:`.org`: :class:`OrganisationData`, the data behind a lock, its cached sums and
  setters (:meth:`~OrganisationData.set_resource_price`, ``add_resource``,
  ``set_period``, ``set_status``, ``set_credit``, ``close_period`` ...), an hour as an
  invoice;
* :mod:`.hours`: which hours a usage call answers and each hour's figures (the running
  hour partly filled, filtered, by day or month, the history before the newest invoice);
* :mod:`.contract`: the contracts: which one an answer is in, and a document (built in
  the legacy shape) in the one asked for (:func:`to_contract`, :func:`major`);
* :mod:`.views`: pure functions from the data to the API's documents (filter semantics,
  one-team answers, the credit balance), raising :class:`ApiError`;
* :mod:`.usage_views`: the usage documents (the list in either contract, the hour
  broken down);
* :mod:`.organisation`: :class:`Organisation`: the data with the ``render_*`` methods
  tests compare against;
* :mod:`.generate`: :func:`generate_organisation`;
* :mod:`.paging`: the legacy schemes (cursor, page number), the current ones (``perPage``,
  the timestamp cursor, a page per level) and the breakdowns' cuts;
* :mod:`.tokens`: tokens, permissions and ``/v1/auth`` (:class:`Caller`);
* :mod:`.api`: the endpoints and routes (:class:`Api`, :class:`ApiMode`);
* :mod:`.faults`: injected :class:`Faults`, the rate limit, the responses on the wire;
* :mod:`.records`: :class:`RequestRecord` and the request log, :class:`ManualClock`
  (imports nothing else of the simulator);
* :mod:`.server`: HTTP (:class:`Simulator`, the ``Date`` header);
* :mod:`.cli`: ``main()``, i.e. ``python -m exporter.simulator``.

Everything public is re-exported here: import from ``exporter.simulator``.
"""

from exporter.simulator.api import Api, ApiMode
from exporter.simulator.cli import main
from exporter.simulator.contract import ENDPOINTS, MODES, Contract, major, to_contract
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
    Credit,
    Invoice,
    InvoiceTeam,
    LineItem,
    Project,
    Resource,
    Team,
    price_json,
)
from exporter.simulator.org import Aggregates, OrganisationData, aggregate
from exporter.simulator.organisation import Organisation
from exporter.simulator.paging import (
    MAX_PAGE_SIZE,
    current_window,
    cursor_window,
    page_invoice,
    page_levels,
    page_number_window,
    paginate,
    timestamp_page,
)
from exporter.simulator.records import ManualClock, RequestRecord
from exporter.simulator.server import Simulator
from exporter.simulator.tokens import (
    BILLING_READ,
    DEFAULT_ENTITY,
    DEFAULT_TOKEN,
    FULL_PERMISSIONS,
    NO_BILLING_PERMISSIONS,
    TEAM_READ,
    Caller,
    auth_view,
)
from exporter.simulator.usage import UsageRates, usage_since
from exporter.simulator.usage_views import UsageQuery, usage_hour_view, usage_list, usage_view
from exporter.simulator.views import (
    ONE_TEAM,
    ApiError,
    InvoiceFilter,
    credit_view,
    invoice_header,
    invoice_summary,
    invoice_view,
    team_json,
)

__all__ = [
    "BILLING_READ",
    "BYOC_DIMENSIONS",
    "DEFAULT_ENTITY",
    "DEFAULT_TOKEN",
    "ENDPOINTS",
    "FULL_PERMISSIONS",
    "HOUR",
    "KNOWN_RESOURCE_TYPES",
    "MAX_PAGE_SIZE",
    "MODES",
    "NO_BILLING_PERMISSIONS",
    "ONE_TEAM",
    "PAAS_DIMENSIONS",
    "RESOURCE_TYPES",
    "TEAM_READ",
    "Aggregates",
    "Api",
    "ApiError",
    "ApiMode",
    "Caller",
    "Contract",
    "Credit",
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
    "UsageQuery",
    "UsageRates",
    "aggregate",
    "auth_view",
    "credit_view",
    "current_window",
    "cursor_window",
    "generate_organisation",
    "history_entries",
    "invoice_header",
    "invoice_summary",
    "invoice_view",
    "main",
    "major",
    "page_invoice",
    "page_levels",
    "page_number_window",
    "paginate",
    "price_json",
    "pricing_invoice",
    "running_fraction",
    "team_json",
    "timestamp_page",
    "to_contract",
    "usage_entries",
    "usage_first_hour",
    "usage_hour_view",
    "usage_hours",
    "usage_list",
    "usage_since",
    "usage_view",
]
