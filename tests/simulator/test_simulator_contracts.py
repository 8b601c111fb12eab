"""The simulator's two billing contracts: which one each mode answers, the same figures
in both for every endpoint (exactly cents / 100, fractional cents included), invoice
status, the current list's order and paging, ``endpoint_contracts``, the ``Date``
header and the command line's flags.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from email.utils import formatdate
from typing import Any

import httpx
import pytest

from exporter.simulator import ManualClock, Organisation, Simulator, generate_organisation
from exporter.simulator.cli import make_simulator
from tests.simulator.helpers import (
    AUTH,
    CURRENT,
    HOUR,
    NOW,
    amounts,
    as_current,
    body,
    newest,
    period_end,
    serve,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator


@pytest.fixture
def org() -> Organisation:
    return generate_organisation(fractional_cents=True, now=NOW)


def contract_of(data: dict[str, Any]) -> str:
    """Which contract an invoice document is in, by the notes' rule."""
    current = {"paas", "status"} & set(data)
    legacy = {"paasUsage", "paid"} & set(data)
    assert bool(current) != bool(legacy), sorted(data)
    return "current" if current else "legacy"


# -- modes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "flag", "expected"),
    [
        (None, None, "legacy"),  # the class default
        (None, "true", "current"),
        ("legacy", "1", "current"),
        ("legacy", "TRUE", "current"),
        ("legacy", "false", "legacy"),
        ("legacy", "yes", "legacy"),
        ("current", None, "current"),
        ("current", "false", "current"),
        ("legacy-pinned", "true", "legacy"),
        ("legacy-pinned", "1", "legacy"),
    ],
)
def test_each_mode_answers_its_contract(
    org: Organisation, mode: str | None, flag: str | None, expected: str
) -> None:
    options = {} if mode is None else {"contract": mode}
    query = {} if flag is None else {"removeLegacyFields": flag}
    invoice_id = newest(org)
    with serve(org, **options) as (_, c):
        listed = body(c.get("/v1/billing/invoices", params=query))["data"]["invoices"]
        assert {contract_of(entry) for entry in listed} == {expected}
        data = body(c.get(f"/v1/billing/invoices/{invoice_id}", params=query))["data"]
        assert contract_of(data) == expected
        usage = body(c.get("/v1/billing/usage", params={**query, "startTime": "0"}))
        assert all(("paas" in e) == (expected == "current") for e in usage["data"]["usage"])
        credit = c.get("/v1/billing/credit-balance", params=query)
        assert credit.status_code == (200 if expected == "current" else 404)


def test_each_contract_ignores_the_others_parameters(org: Organisation) -> None:
    invoice_id = newest(org)
    path = f"/v1/billing/invoices/{invoice_id}"
    clock = ManualClock(period_end(org) + 30.5 * HOUR)
    with serve(org, page_size=2, clock=clock) as (_, c):
        legacy = body(c.get(path))
        assert body(c.get(path, params={"teamsPerPage": "1", "teamsPage": "2"})) == legacy
        assert legacy["pagination"]["count"] == 2  # per_page's default, not teamsPerPage
        listed = body(c.get("/v1/billing/invoices", params={"perPage": "1"}))
        assert listed["pagination"]["count"] == 2
        hourly = body(c.get("/v1/billing/usage"))
        ignored = {"granularity": "total", "teamId": "team-1", "projectId": "web", "perPage": "9"}
        same = body(c.get("/v1/billing/usage", params=ignored))
        assert same["data"] == hourly["data"]
        assert same["pagination"]["count"] == hourly["pagination"]["count"] == 2
        cursor = {"cursor": hourly["pagination"]["cursor"]}
        second = body(c.get("/v1/billing/usage", params=cursor))
        assert body(c.get("/v1/billing/usage", params={**ignored, **cursor})) == second

        current = body(c.get(path, params=CURRENT))
        assert body(c.get(path, params={**CURRENT, "per_page": "1", "page": "2"})) == current
        assert current["pagination"]["teams"]["count"] == 2
        first = body(c.get("/v1/billing/invoices", params={**CURRENT, "per_page": "1"}))
        assert first["pagination"]["count"] == 2
        usage = body(c.get("/v1/billing/usage", params={**CURRENT, "per_page": "1"}))
        assert usage["pagination"]["count"] == 2


def test_endpoint_contracts_override_the_mode(org: Organisation) -> None:
    invoice_id = newest(org)
    overrides = {"get_invoice": "legacy-pinned", "list_invoices": "current"}
    with serve(org, endpoint_contracts=overrides) as (_, c):
        listed = body(c.get("/v1/billing/invoices"))["data"]["invoices"]
        assert {contract_of(entry) for entry in listed} == {"current"}
        data = body(c.get(f"/v1/billing/invoices/{invoice_id}", params=CURRENT))["data"]
        assert contract_of(data) == "legacy"
        usage = body(c.get("/v1/billing/usage", params={**CURRENT, "startTime": "0"}))
        assert all("paas" in e for e in usage["data"]["usage"])  # the mode's own rule
        assert all("paasUsage" in e for e in body(c.get("/v1/billing/usage"))["data"]["usage"])
    with pytest.raises(ValueError, match="get_invoices"):
        Simulator(org, endpoint_contracts={"get_invoices": "current"})
    with pytest.raises(ValueError, match="modern"):
        Simulator(org, contract="modern")
    with pytest.raises(ValueError, match="team-9"):
        Simulator(org, single_team="team-9")


# -- the same figures in both -----------------------------------------------------------

FILTERS: list[dict[str, str]] = [
    {},
    {"teamId": "team-2"},
    {"teamId": "team-1", "projectId": "web"},
    {"teamId": "team-3", "resourceType": "service"},
    {"projectId": "api"},
    {"resourceType": "volume"},
    {"teamId": "team-1", "projectId": "workers", "resourceType": "job"},
]
BIG = {"teamsPerPage": "100", "projectsPerPage": "100", "resourcesPerPage": "100"}


def test_every_endpoint_gives_the_same_figures_in_both(org: Organisation) -> None:
    since = period_end(org)
    clock = ManualClock(since + 7.25 * HOUR)
    hour = int(since) + 3 * HOUR
    invoice_id = newest(org)
    status = org.invoice(invoice_id).status
    with serve(org, clock=clock, page_size=100) as (_, c):
        legacy_list = body(c.get("/v1/billing/invoices"))["data"]["invoices"]
        current_list = body(c.get("/v1/billing/invoices", params=CURRENT))["data"]["invoices"]
        by_id = {entry["id"]: entry for entry in legacy_list}
        for entry in current_list:
            assert entry == {**as_current(by_id[entry["id"]]), "status": entry["status"]}
            assert entry["status"] == org.invoice(entry["id"]).status
        assert current_list == org.render_invoice_summaries(contract="current")

        for path in (f"/v1/billing/invoices/{invoice_id}", f"/v1/billing/usage/{hour}"):
            for query in FILTERS:
                legacy = body(c.get(path, params=query))["data"]
                current = body(c.get(path, params={**query, **CURRENT, **BIG}))["data"]
                expected = as_current(legacy)
                if "invoices" in path:
                    expected["status"] = status
                assert current == expected, (path, query)
            team = body(c.get(path.replace("/v1/", "/v1/teams/team-4/"), params=CURRENT))
            assert team["data"] == as_current(
                body(c.get(path.replace("/v1/", "/v1/teams/team-4/")))["data"]
            ) | ({"status": status} if "invoices" in path else {})
        whole = org.render_invoice(invoice_id, team_id="team-1", project_id="web")
        assert org.render_invoice(
            invoice_id, team_id="team-1", project_id="web", contract="current"
        ) == {**as_current(whole), "status": status}
        assert org.render_usage_hour(hour, now=clock(), contract="current") == as_current(
            org.render_usage_hour(hour, now=clock())
        )

        for path in ("/v1/billing/usage", "/v1/teams/team-2/billing/usage"):
            legacy_usage = body(c.get(path))["data"]["usage"]
            current_usage = body(c.get(path, params=CURRENT))["data"]["usage"]
            assert len(current_usage) == 8  # seven hours and the running one
            assert current_usage == as_current(legacy_usage)
        team_id = "team-2"
        assert org.render_usage(now=clock(), team_id=team_id, contract="current") == as_current(
            org.render_usage(now=clock(), team_id=team_id)
        )

        path = f"/v1/billing/invoices/{invoice_id}"
        deep = body(c.get(path, params={**CURRENT, **FILTERS[2]}))["data"]
        assert all(type(amount) is float for amount in amounts(deep))
        legacy_amounts = amounts(body(c.get(path, params=FILTERS[2]))["data"])
        assert {cents % 1 for cents in legacy_amounts} >= {0.5, 0.25}  # fractional cents


def test_fractional_cents_divide_exactly() -> None:
    org = generate_organisation(teams=1, projects_per_team=1, now=NOW)
    invoice_id = newest(org)
    cases = {1234.5: "12.345", 0.25: "0.0025", 0.5: "0.005", 7: "0.07", 10001.75: "100.0175"}
    cases |= {0.07: "0.0007", 1234.56: "12.3456"}  # where cents / 100 in floats is off
    path = f"/v1/billing/invoices/{invoice_id}"
    query = {**CURRENT, "teamId": "team-1", "projectId": "web", "resourceType": "job"}
    with serve(org) as (_, c):
        for cents, text in cases.items():
            org.set_resource_price(invoice_id, "team-1", "web", "job-1", cpu=cents, memory=0)
            data = body(c.get(path, params=query))["data"]
            (group,) = data["paas"]["teams"][0]["projects"][0]["resourceTypes"]
            (resource,) = group["resources"]
            assert repr(resource["price"]["cpu"]) == text
            assert resource["price"] == {"total": float(text), "cpu": float(text)}
            raw = c.get(path, params=query).text
            assert f'"cpu":{text}' in raw  # the shortest text of the float: the decimal


# -- invoice status ---------------------------------------------------------------------


def test_status_is_stored_and_paid_derived(org: Organisation) -> None:
    by_end = sorted(org.invoices, key=lambda invoice: invoice.period_end)
    assert [i.status for i in by_end] == ["paid", "paid", "open"]
    invoice_id = by_end[-1].id
    with serve(org) as (_, c):
        for status, paid in (("payment_failed", False), ("paid", True), ("void", False)):
            org.set_status(invoice_id, status)
            legacy = body(c.get(f"/v1/billing/invoices/{invoice_id}"))["data"]
            current = body(c.get(f"/v1/billing/invoices/{invoice_id}", params=CURRENT))["data"]
            assert (legacy["paid"], "status" in legacy) == (paid, False)
            assert (current["status"], "paid" in current) == (status, False)
            listed = body(c.get("/v1/billing/invoices", params=CURRENT))["data"]["invoices"]
            assert listed[0]["status"] == status
            entries = body(c.get("/v1/billing/invoices"))["data"]["invoices"]
            assert next(e for e in entries if e["id"] == invoice_id)["paid"] is paid
    invoice = org.invoice(invoice_id)
    invoice.paid = True
    assert (invoice.status, invoice.paid) == ("paid", True)
    assert org.close_period(by_end[-1].period_end + 10 * HOUR).status == "open"


def test_current_list_is_newest_first_and_pages_by_per_page() -> None:
    org = generate_organisation(invoices=5, now=NOW)
    by_end = sorted(org.invoices, key=lambda i: i.period_end, reverse=True)
    with serve(org, page_size=2) as (_, c):
        pages, cursor = [], None
        while True:
            query = {**CURRENT, **({"cursor": cursor} if cursor else {})}
            answer = body(c.get("/v1/billing/invoices", params=query))
            pages.append(answer)
            if not answer["pagination"]["hasNextPage"]:
                break
            cursor = answer["pagination"]["cursor"]
        assert [p["pagination"]["count"] for p in pages] == [2, 2, 1]
        ids = [e["id"] for p in pages for e in p["data"]["invoices"]]
        assert ids == [i.id for i in by_end]
        legacy = [e["id"] for e in body(c.get("/v1/billing/invoices"))["data"]["invoices"]]
        assert legacy == [i.id for i in org.invoices[:2]]  # the legacy order: none
        three = body(c.get("/v1/billing/invoices", params={**CURRENT, "perPage": "3"}))
        assert three["pagination"]["count"] == 3
        legacy_cursor = body(c.get("/v1/billing/invoices"))["pagination"]["cursor"]
        mixed = c.get("/v1/billing/invoices", params={**CURRENT, "cursor": legacy_cursor})
        assert mixed.status_code == 400
        assert c.get("/v1/billing/invoices", params={**CURRENT, "perPage": "0"}).status_code == 400
        # ties on period.end: by ID, descending
        oldest, second = by_end[-1], by_end[-2]
        org.set_period(oldest.id, oldest.period_start, second.period_end)
        listed = body(c.get("/v1/billing/invoices", params={**CURRENT, "perPage": "10"}))
        tail = [e["id"] for e in listed["data"]["invoices"]][-2:]
        assert tail == sorted([oldest.id, second.id], reverse=True)


# -- the Date header ----------------------------------------------------------------------


def test_every_answer_has_the_date_of_the_simulators_clock(org: Organisation) -> None:
    clock = ManualClock(NOW + 0.75)
    with serve(org, clock=clock, rate_limit=5) as (sim, c):
        sim.faults.fail(503, match=lambda path, query: path == "/v1/teams")
        sim.faults.malformed(kind="html", match=lambda path, query: path == "/v1/auth")
        answers = [
            c.get("/v1/billing/invoices"),
            c.get("/v1/teams"),  # 503
            c.get("/v1/auth"),  # html
            c.get("/nowhere"),  # 404
            c.get("/v1/teams", headers={"Authorization": "Bearer nope"}),  # 401
        ]
        clock.advance(86400 + 3600)
        answers.append(c.get("/v1/billing/invoices", params=CURRENT))
        answers.append(c.get("/v1/teams"))  # 429: the token's five are spent
    assert [a.status_code for a in answers] == [200, 503, 200, 404, 401, 200, 429]
    for answer in answers:
        assert len(answer.headers.get_list("Date")) == 1
    assert {a.headers["Date"] for a in answers[:5]} == {"Tue, 17 Nov 2026 12:30:00 GMT"}
    assert {a.headers["Date"] for a in answers[5:]} == {formatdate(NOW + 90000, usegmt=True)}
    assert answers[-1].headers["Date"] == "Wed, 18 Nov 2026 13:30:00 GMT"


# -- the command line ---------------------------------------------------------------------


def test_command_line_flags() -> None:
    default = make_simulator(["--teams", "3"])
    assert (default.contract, default.single_team, default.team_read) == ("current", None, True)
    assert default.granularity_total
    assert default.org.credit is not None
    flagged = make_simulator(
        [
            "--teams",
            "3",
            "--contract",
            "legacy-pinned",
            "--single-team",
            "team-3",
            "--no-granularity-total",
            "--no-credit",
            "--no-team-read",
        ]
    )
    assert (flagged.contract, flagged.single_team) == ("legacy-pinned", "team-3")
    assert (flagged.granularity_total, flagged.team_read, flagged.org.credit) == (
        False,
        False,
        None,
    )
    assert make_simulator(["--contract", "legacy"]).contract == "legacy"
    with pytest.raises(SystemExit):
        make_simulator(["--contract", "modern"])

    process = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator", "--port", "0", "--single-team", "team-2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url, token = process.stdout.readline().split()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
            assert body(c.get("/v1/auth"))["data"]["entityId"] == "team-2"
            listed = body(c.get("/v1/billing/invoices"))["data"]["invoices"]
            assert all("paas" in entry and "status" in entry for entry in listed)  # current
            data = body(c.get(f"/v1/billing/invoices/{listed[0]['id']}"))["data"]
            assert "projects" in data["paas"]
            assert "teams" not in data["paas"]
            assert body(c.get("/v1/billing/credit-balance"))["data"]["currency"] == "usd"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_default_simulator_still_answers_the_legacy_contract() -> None:
    with Simulator() as sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        listed = body(c.get("/v1/billing/invoices"))["data"]["invoices"]
        assert all("paasUsage" in entry and "paid" in entry for entry in listed)
        assert all("status" not in entry and "paas" not in entry for entry in listed)
