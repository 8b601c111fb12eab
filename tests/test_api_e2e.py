"""Right against the real API: each behaviour of the current API docs, end to end.

The exporter runs as a process against the simulator, which behaves as
``docs/api.md`` describes: the breakdown paged by ``page`` with a decoy ``cursor``,
lists by ``cursor`` only, a running hour that fills with the clock, ``GET /v1/auth``,
a token without billing permission, the older billing API, fractional cents.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from exporter import metrics as m
from exporter.api.errors import PERMISSION_HINT
from exporter.simulator import ManualClock, Organisation, Simulator, generate_organisation
from tests.harness import Exporter, Scrape, api_env, parse_exposition, wait_for

pytestmark = pytest.mark.e2e
TOKEN = "api-e2e-token"
HOUR = 3600


def once(sim: Simulator, **settings: str) -> tuple[subprocess.CompletedProcess[str], Scrape]:
    """``northflank-exporter --once`` against ``sim``: the process and what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--once"],
        env=api_env(sim.url, TOKEN, **settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, parse_exposition(done.stdout)


def labelled(scrape: Scrape, name: str, **labels: str) -> list[float]:
    wanted = set(labels.items())
    return [value for have, value in scrape.family(name).items() if wanted <= have]


def cents(price: dict[str, float]) -> float:
    return math.fsum(price.values())


# --------------------------------------------------------------------------- paging


def test_paged_breakdown_to_the_cent_with_exact_requests() -> None:
    """Every answer needs pages (2 entries a page), in the legacy contract's schemes (a
    page per level of the current one: tests/test_contracts_e2e.py): the figures match to
    the cent and the requests are exactly one per page, no page asked twice."""
    org = generate_organisation(teams=3, projects_per_team=3, invoices=3)
    with Simulator(org, token=TOKEN, max_page_size=2, contract="legacy-pinned") as sim:
        done, scrape = once(sim, unbilled="false")
        assert done.returncode == 0, done.stderr
        invoice = org.newest_invoice()

        def pages(entries: int) -> int:
            return max(1, math.ceil(entries / 2))

        expected = {
            "/v1/auth": 1,
            "credit": 1,  # a legacy account's 404
            "list_invoices": pages(len(org.invoices)),
            "unfiltered": pages(len(invoice.teams)),
            "teamId": sum(pages(len(team.projects)) for team in invoice.teams),
            "projectId": sum(
                pages(len({res.resource_type for res in project.resources}))
                for team in invoice.teams
                for project in team.projects
            ),
        }
        seen = {
            "/v1/auth": sim.count(path_prefix="/v1/auth"),
            "credit": sim.count(path_prefix="/v1/billing/credit-balance"),
            "list_invoices": sum(1 for r in sim.requests if r.path == "/v1/billing/invoices"),
            "unfiltered": sum(
                1
                for r in sim.requests
                if r.path.startswith("/v1/billing/invoices/") and not r.query.get("teamId")
            ),
            "teamId": sum(
                1
                for r in sim.requests
                if r.path.startswith("/v1/billing/invoices/")
                and r.query.get("teamId")
                and not r.query.get("projectId")
            ),
            "projectId": sim.count(path_prefix="/v1/billing/invoices/", query_has="projectId"),
        }
        assert seen == expected
        assert all(
            "cursor" not in r.query
            for r in sim.requests
            if r.path.startswith("/v1/billing/invoices/")
        )
        assert all("page" not in r.query for r in sim.requests if r.path == "/v1/billing/invoices")
        # figures to the cent, at every level
        for team in invoice.teams:
            team_cents = 0.0
            for project in team.projects:
                project_cents = math.fsum(cents(res.price) for res in project.resources)
                team_cents += project_cents
                [got] = labelled(scrape, m.PROJECT_COST.name, team=team.id, project=project.id)
                assert got == pytest.approx(project_cents / 100, abs=1e-9)
                for res in project.resources:
                    [value] = labelled(
                        scrape,
                        m.RESOURCE_COST.name,
                        team=team.id,
                        project=project.id,
                        resource=res.id,
                    )
                    assert value == pytest.approx(cents(res.price) / 100, abs=1e-9)
            [got] = labelled(scrape, m.TEAM_COST.name, team=team.id)
            assert got == pytest.approx(team_cents / 100, abs=1e-9)
        whole = org.render_invoice(invoice.id)
        line_items = scrape.family(m.LINE_ITEM.name)
        by_title: dict[str, float] = {}
        for item in whole["lineItems"]:  # repeated on every page: counted once
            by_title[item["title"]] = by_title.get(item["title"], 0) + item["total"]
        assert {dict(labels)["item"]: value for labels, value in line_items.items()} == {
            title: pytest.approx(total / 100) for title, total in by_title.items()
        }
        assert scrape.get(m.INVOICE_AMOUNT.name, currency="usd") == whole["total"] / 100


# --------------------------------------------------------------------------- the running hour


def test_the_running_hour_grows_then_settles() -> None:
    org = generate_organisation(teams=2, projects_per_team=2)
    since = org.newest_invoice().period_end
    start_hour = math.ceil(since / HOUR) * HOUR  # the first whole hour the usage counts
    clock = ManualClock(start_hour + 2.25 * HOUR)  # two whole hours, the third a quarter filled

    def expected(sim: Simulator, team_id: str | None = None) -> float:
        total = 0.0
        for entry in sim.org.render_usage(now=clock(), team_id=team_id):
            total += entry["paasUsage"]["price"]["total"]
            if team_id is None and "byocUsage" in entry:
                total += entry["byocUsage"]["price"]["total"]
        return total / 100

    with (
        # hour by hour: a legacy account (the current contract's sums: test_unbilled_current.py)
        Simulator(
            org, token=TOKEN, clock=clock, running_hour=True, contract="legacy-pinned"
        ) as sim,
        Exporter(env=api_env(sim.url, TOKEN, depth="team")) as exporter,
    ):

        def unbilled_is(value: float) -> Scrape:
            return exporter.wait_metric(
                m.UNBILLED_COST.name,
                lambda v: v == pytest.approx(value, abs=1e-9),
                currency="usd",
            )

        first = unbilled_is(expected(sim))
        assert first.get(m.UNBILLED_THROUGH.name) == start_hour + 3 * HOUR
        quarter = expected(sim)

        clock.advance(0.5 * HOUR)  # the running hour is three quarters filled
        grown = unbilled_is(expected(sim))
        assert grown.get(m.UNBILLED_COST.name, currency="usd") > quarter
        assert grown.get(m.UNBILLED_THROUGH.name) == start_hour + 3 * HOUR

        clock.advance(3.25 * HOUR)  # exactly 6 hours: every hour so far has ended
        sum_of_whole_hours = 0.0
        for entry in sim.org.render_usage(now=clock(), running_hour=False):
            sum_of_whole_hours += entry["paasUsage"]["price"]["total"] + entry.get(
                "byocUsage", {}
            ).get("price", {}).get("total", 0)
        settled = unbilled_is(sum_of_whole_hours / 100)
        final = settled.get(m.UNBILLED_COST.name, currency="usd") or 0
        assert final == pytest.approx(sum_of_whole_hours / 100, abs=1e-9)
        for team in ("team-1", "team-2"):
            [value] = labelled(settled, m.TEAM_UNBILLED_COST.name, team=team)
            assert value == pytest.approx(expected(sim, team), abs=1e-9)
        # later polls ask from 3 hours before the newest hour summed, never from since again
        sim.clear_requests()
        wait_for(lambda: sim.count(path_prefix="/v1/billing/usage") >= 1)
        starts = {r.query["startTime"] for r in sim.requests if r.path == "/v1/billing/usage"}
        assert starts == {str(start_hour + 3 * HOUR)}


# --------------------------------------------------------------------------- permissions


def test_no_billing_permission_says_what_to_check() -> None:
    with (
        Simulator(generate_organisation(teams=1), token="other", no_billing_tokens={TOKEN}) as sim,
        Exporter(env=api_env(sim.url, TOKEN)) as exporter,
    ):
        scrape = exporter.wait_metric(
            m.POLL_ERRORS.sample_name, lambda v: (v or 0) >= 2, reason="auth"
        )
        assert scrape.get(m.UP.name) == 0
        # /v1/auth works for this token: its families are there
        assert labelled(scrape, m.TOKEN_INFO.name, entity_type="org")
        logs = exporter.logs()
    failures = [line for line in logs.splitlines() if "poll failed" in line]
    assert len(failures) >= 2
    for line in failures:  # one line per poll, each saying what to check
        assert "HTTP 403" in line
        assert "Organisation > Admin > Billing > Read" in line
        assert "Account > Billing > General > Read" in line
        assert PERMISSION_HINT in line
    assert TOKEN not in logs


def test_older_billing_api_fails_with_a_sentence() -> None:
    with Simulator(generate_organisation(teams=1), token=TOKEN, legacy_billing=True) as sim:
        done, _ = once(sim)
        assert done.returncode == 1
        assert done.stdout == ""
        assert "older billing API" in done.stderr
        assert "Traceback" not in done.stderr
        assert "Field required" not in done.stderr
        with Exporter(env=api_env(sim.url, TOKEN)) as exporter:
            scrape = exporter.wait_metric(
                m.POLL_ERRORS.sample_name, lambda v: (v or 0) >= 1, reason="invalid_response"
            )
            assert scrape.get(m.UP.name) == 0
            assert "older billing API" in exporter.logs()


# --------------------------------------------------------------------------- the token


@pytest.fixture
def small_org() -> Organisation:
    return generate_organisation(teams=1, projects_per_team=1)


def test_token_families_with_an_expiry(small_org: Organisation) -> None:
    expires = 1_830_297_600.5  # fractional seconds are kept
    with Simulator(
        small_org, token=TOKEN, token_entity=("team", "team-1"), token_expires_at=expires
    ) as sim:
        done, scrape = once(sim, depth="team")
        assert done.returncode == 0, done.stderr
        assert scrape.get(m.TOKEN_INFO.name, entity_type="team", entity_id="team-1") == 1
        assert scrape.get(m.TOKEN_EXPIRY.name) == expires
        assert scrape.get(m.API_REQUESTS.sample_name, endpoint="auth", code="200") == 1


def test_token_without_an_expiry_has_no_expiry_sample(small_org: Organisation) -> None:
    with Simulator(small_org, token=TOKEN, token_expires_at=None) as sim:
        done, scrape = once(sim, depth="team")
        assert done.returncode == 0, done.stderr
        assert labelled(scrape, m.TOKEN_INFO.name, entity_type="org")
        assert scrape.family(m.TOKEN_EXPIRY.name) == {}
        assert "# TYPE northflank_token_expiry_timestamp_seconds gauge" in scrape.text


def test_auth_failing_costs_no_poll(small_org: Organisation) -> None:
    with Simulator(small_org, token=TOKEN, token_expires_at=1_830_297_600) as sim:
        sim.faults.fail(500, count=1000, match=lambda path, query: path == "/v1/auth")
        with Exporter(env=api_env(sim.url, TOKEN, depth="team")) as exporter:
            exporter.wait_ready()
            scrape = exporter.wait_metric(
                m.API_REQUESTS.sample_name, lambda v: v == 4, endpoint="auth", code="500"
            )
            assert scrape.get(m.UP.name) == 1
            assert scrape.family(m.TOKEN_INFO.name) == {}
            assert scrape.family(m.TOKEN_EXPIRY.name) == {}
            assert scrape.get(m.POLL_ERRORS.sample_name, reason="http") == 0
            assert (scrape.get(m.API_REQUESTS.sample_name, endpoint="auth", code="500") or 0) == 4
            # polls go on succeeding; /v1/auth is not asked again within the hour
            exporter.wait_metric(
                m.API_REQUESTS.sample_name,
                lambda v: (v or 0) >= 3,
                endpoint="list_invoices",
                code="200",
            )
            assert sim.count(path_prefix="/v1/auth") == 4  # one check: a try and 3 retries
            logs = exporter.logs()
    warnings = [line for line in logs.splitlines() if "GET /v1/auth" in line]
    assert len(warnings) == 1
    assert "tried again in an hour" in warnings[0]


# --------------------------------------------------------------------------- values


def test_half_cents_and_fractional_timestamps() -> None:
    org = generate_organisation(teams=2, projects_per_team=1)
    invoice = org.newest_invoice()
    team = invoice.teams[0]
    project = team.projects[0]
    resource = project.resources[0]
    org.set_resource_price(
        invoice.id, team.id, project.id, resource.id, cpu=0.5, memory=0, storage=0, gpu=0
    )
    org.set_period(invoice.id, invoice.period_start + 0.25, invoice.period_end + 0.75)
    with Simulator(org, token=TOKEN) as sim:
        done, scrape = once(sim)
        assert done.returncode == 0, done.stderr
    line = next(
        text
        for text in scrape.text.splitlines()
        if text.startswith("northflank_resource_cost{")
        and f'resource="{resource.id}"' in text
        and f'team="{team.id}"' in text
    )
    assert line.endswith(" 0.005")
    dimension = labelled(scrape, m.RESOURCE_DIMENSION_COST.name, team=team.id, resource=resource.id)
    assert dimension == [0.005]
    assert scrape.get(m.INVOICE_PERIOD_END.name) == invoice.period_end
    assert invoice.period_end % 1 == 0.75
    assert scrape.get(m.UNBILLED_SINCE.name) == invoice.period_end
    project_cents = math.fsum(cents(res.price) for res in project.resources)
    assert labelled(scrape, m.PROJECT_COST.name, team=team.id, project=project.id) == [
        project_cents / 100
    ]


def test_harness_and_unknown_types_are_carried_through() -> None:
    org = generate_organisation(teams=1, projects_per_team=1)
    invoice = org.newest_invoice()
    team, project = invoice.teams[0], invoice.teams[0].projects[0]
    org.add_resource(invoice.id, team.id, project.id, "harness", "ci-runner", cpu=1234)
    org.add_resource(invoice.id, team.id, project.id, "sandbox", "playground", memory=99.5)
    with Simulator(org, token=TOKEN) as sim:
        done, scrape = once(sim, unbilled="false")
        assert done.returncode == 0, done.stderr
    assert (
        scrape.get(
            m.RESOURCE_TYPE_COST.name,
            currency="usd",
            team=team.id,
            project=project.id,
            resource_type="harness",
        )
        == 12.34
    )
    assert labelled(
        scrape, m.RESOURCE_COST.name, resource="playground", resource_type="sandbox"
    ) == [0.995]
