"""A faithful fake of the Northflank billing API, for the demo mode and the tests.

The simulator serves, over real HTTP on loopback, the endpoints the exporter reads:

* ``GET /v1/billing/invoices`` and ``GET /v1/teams/{teamId}/billing/invoices``:
  invoice summaries, in a shuffled (deterministic, never date-sorted) order, paginated;
* ``GET /v1/billing/invoices/{invoiceId}`` and
  ``GET /v1/teams/{teamId}/billing/invoices/{invoiceId}``: one invoice, with the query
  filters ``teamId``, ``projectId`` and ``resourceType`` behaving as the "Get invoice"
  reference page says (a filtered team price is only the filtered slice; BYOC is always
  customer-wide), the breakdown paginated;
* ``GET /v1/billing/usage`` and ``GET /v1/teams/{teamId}/billing/usage``: hourly usage
  since the newest invoice (see below), newest first, paginated;
* ``GET /v1/teams``: the organisation's teams, paginated.

It checks ``Authorization: Bearer <token>`` (401, or 403 for ``forbidden_tokens``),
answers in the API's envelopes (``{"data": ...}``, ``{"error": {...}}``), sends the
``x-ratelimit-*`` headers on every response and answers 429 once the window's requests
are spent. Faults (errors, hangs, malformed bodies, latency) can be switched on per
request from Python.

The data is an :class:`Organisation` made by :func:`generate_organisation`: teams,
projects (whose IDs repeat across teams), resources of every resource type, and a few
monthly invoices. Only resource-level amounts are stored; every total (resource type,
project, team, PaaS, line items, tax, invoice) is derived from them when a request
comes, so a test can change a figure between two polls and every level stays consistent.

Hourly usage (the spend not yet invoiced): one entry per whole hour that has ended by
the simulator's ``clock``, from the newest invoice's ``period.end`` on, ``timestamp``
being the hour's start (Unix seconds, a multiple of 3600), newest first; ``startTime``
(inclusive, default that ``period.end``) and ``endTime`` (exclusive) select hours by
their start. Each resource of the newest invoice costs, per dimension and hour,
``round(monthly cents * factor / 720)``, the factor (0.5 .. 1.5) hashed from (team,
resource ID, hour); a team's hour is the sum of its resources (the team variant has only
``paasUsage``), the organisation's ``paasUsage`` the sum of its teams, its ``byocUsage``
the invoice's BYOC figures / 720. :class:`ManualClock` moves time by hand,
:meth:`Organisation.close_period` finalizes a new invoice (the window restarts at its
end) and :meth:`Organisation.render_usage` is what the endpoints answer, unpaged.

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
(``--help`` lists the options: seed, invoices, latency, page size, rate limit ...).

It binds 127.0.0.1 by default, uses the standard library only and logs nothing per
request.

The package has three layers, each importing only the ones below it:

* :mod:`.org`: the data model (:class:`Organisation` and its dataclasses, cached sums and
  hourly usage rates, setters) and :func:`generate_organisation`;
* :mod:`.views`: pure functions from the data to the API's documents (filter semantics,
  pagination and cursors, the endpoints and their routes), raising :class:`ApiError`;
* :mod:`.server`: HTTP (:class:`Simulator`, :class:`Faults`, :class:`RequestRecord`,
  rate limiting, :class:`ManualClock`) and ``main()``.

Everything public is re-exported here: import from ``exporter.simulator``.
"""

from exporter.simulator.org import (
    BYOC_DIMENSIONS,
    HOUR,
    PAAS_DIMENSIONS,
    RESOURCE_TYPES,
    Invoice,
    InvoiceTeam,
    LineItem,
    Organisation,
    Project,
    Resource,
    Team,
    UsageRates,
    aggregate,
    generate_organisation,
)
from exporter.simulator.server import (
    DEFAULT_TOKEN,
    Faults,
    ManualClock,
    RequestRecord,
    Simulator,
    main,
)
from exporter.simulator.views import (
    MAX_PAGE_SIZE,
    ApiError,
    InvoiceFilter,
    invoice_header,
    invoice_summary,
    invoice_view,
    page_window,
    paginate,
    price_json,
    team_json,
    usage_entries,
    usage_hours,
    usage_view,
)

__all__ = [
    "BYOC_DIMENSIONS",
    "DEFAULT_TOKEN",
    "HOUR",
    "MAX_PAGE_SIZE",
    "PAAS_DIMENSIONS",
    "RESOURCE_TYPES",
    "ApiError",
    "Faults",
    "Invoice",
    "InvoiceFilter",
    "InvoiceTeam",
    "LineItem",
    "ManualClock",
    "Organisation",
    "Project",
    "RequestRecord",
    "Resource",
    "Simulator",
    "Team",
    "UsageRates",
    "aggregate",
    "generate_organisation",
    "invoice_header",
    "invoice_summary",
    "invoice_view",
    "main",
    "page_window",
    "paginate",
    "price_json",
    "team_json",
    "usage_entries",
    "usage_hours",
    "usage_view",
]
