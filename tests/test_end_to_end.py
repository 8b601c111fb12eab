"""The exporter process over real HTTP against the simulator, both on loopback.

Expected figures come from the simulator's own views of its organisation (cents / 100),
never from the exporter's code.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from exporter import metrics as m
from exporter.simulator import Simulator, generate_organisation
from tests.harness import (
    TOKEN,
    Exporter,
    MakeSim,
    Scrape,
    api_env,
    billing_requests,
    free_port,
    parse_exposition,
    wait_for,
)

PAAS = {"cpu": "cpu", "memory": "memory", "storage": "storage", "gpu": "gpu"}
BYOC = {"vcpu": "vcpu", "memory": "memory", "gpuMemory": "gpu_memory", "cluster": "cluster"}
pytestmark = pytest.mark.e2e


@pytest.fixture
def sim_hours() -> float:
    """``sim`` (tests/conftest.py): the demo organisation, 5.5 hours past the newest
    invoice: 5 whole hours."""
    return 5.5


def exporter_env(sim: Simulator, **overrides: str) -> dict[str, str]:
    return api_env(sim.url, TOKEN, **overrides)


def run_once(sim: Simulator, status: int = 0, **overrides: str) -> subprocess.CompletedProcess[str]:
    """``--once`` against ``sim``; fails unless it exits ``status``."""
    env = {"PATH": "/usr/bin:/bin", **exporter_env(sim, **overrides)}
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == status, result.stderr
    return result


# --------------------------------------------------------------------------- expected values


def expected_series(sim: Simulator) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every cost series the exporter should serve for the newest invoice, from the simulator."""
    org = sim.org
    inv_id = org.newest_invoice().id
    data = org.render_invoice(inv_id)
    cur = data["currency"]
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    def put(name: str, value: float, **labels: str) -> None:
        out[(name, frozenset(labels.items()))] = value

    def put_price(
        family: str, price: dict[str, float], dims: dict[str, str], **labels: str
    ) -> None:
        put(f"northflank_{family}_cost", price["total"] / 100, currency=cur, **labels)
        for key, dim in dims.items():
            if key in price:
                put(
                    f"northflank_{family}_dimension_cost",
                    price[key] / 100,
                    currency=cur,
                    dimension=dim,
                    **labels,
                )

    put(m.INVOICE_INFO.name, 1, invoice_id=inv_id, currency=cur)
    put(m.INVOICE_PERIOD_START.name, data["period"]["start"])
    put(m.INVOICE_PERIOD_END.name, data["period"]["end"])
    put(m.INVOICE_AMOUNT.name, data["total"] / 100, currency=cur)
    put(m.INVOICE_SUBTOTAL.name, data["subTotal"] / 100, currency=cur)
    put(m.INVOICE_DISCOUNT.name, data["discounts"]["total"] / 100, currency=cur)
    put(m.INVOICE_TAX.name, data["tax"]["amount"] / 100, currency=cur)
    put(m.INVOICE_TAX_RATIO.name, data["tax"]["percent"] / 100)
    put(m.INVOICE_PAID.name, float(data["paid"]))
    items: dict[str, dict[str, float]] = {}
    for item in data["lineItems"]:
        acc = items.setdefault(item["title"], {})
        for part in ("total", "base", "proration"):
            if part in item:
                acc[part] = acc.get(part, 0) + item[part]
    for title, parts in items.items():
        for part, family in (("total", ""), ("base", "_base"), ("proration", "_proration")):
            if part in parts:
                put(
                    f"northflank_invoice_line_item{family}_amount",
                    parts[part] / 100,
                    currency=cur,
                    item=title,
                )
    put_unbilled(sim, put, inv_id, cur)
    put_price("byoc", data["byocUsage"]["price"], BYOC)
    put_price("paas", data["paasUsage"]["price"], PAAS)
    for team in data["paasUsage"]["teams"]:
        tid = team["id"]
        put_price("team", team["price"], PAAS, team=tid, team_name=team["name"])
        team_view = org.render_invoice(inv_id, team_id=tid)["paasUsage"]["teams"][0]
        for project in team_view["projects"]:
            pid = project["id"]
            put_price(
                "project",
                project["price"],
                PAAS,
                team=tid,
                project=pid,
                project_name=project["name"],
            )
            detail = org.render_invoice(inv_id, team_id=tid, project_id=pid)
            for kind in detail["paasUsage"]["teams"][0]["projects"][0]["resourceTypes"]:
                rtype = kind["resourceType"]
                put_price(
                    "resource_type", kind["price"], PAAS, team=tid, project=pid, resource_type=rtype
                )
                for res in kind["resources"]:
                    put_price(
                        "resource",
                        res["price"],
                        PAAS,
                        team=tid,
                        project=pid,
                        resource_type=rtype,
                        resource=res["id"],
                        resource_name=res["name"],
                    )
    return out


def put_unbilled(sim: Simulator, put: Any, inv_id: str, cur: str) -> None:
    """The unbilled families: the simulator's hours since the newest invoice, summed."""
    org = sim.org
    now = sim.clock()
    hours = org.render_usage(now=now)
    since = org.invoice(inv_id).period_end
    put(m.UNBILLED_SINCE.name, since)
    put(m.UNBILLED_THROUGH.name, max(h["timestamp"] for h in hours) + 3600)
    paas = {dim: 0.0 for dim in PAAS.values()}
    byoc = {dim: 0.0 for dim in BYOC.values()}
    total = 0.0
    for entry in hours:
        for key, dim in PAAS.items():
            paas[dim] += entry["paasUsage"]["price"].get(key, 0)
        for key, dim in BYOC.items():
            byoc[dim] += entry["byocUsage"]["price"].get(key, 0)
        total += entry["paasUsage"]["price"]["total"] + entry["byocUsage"]["price"]["total"]
    put(m.UNBILLED_COST.name, total / 100, currency=cur)
    for dim, value in paas.items():
        put(m.UNBILLED_PAAS_DIMENSION_COST.name, value / 100, currency=cur, dimension=dim)
    for dim, value in byoc.items():
        put(m.UNBILLED_BYOC_DIMENSION_COST.name, value / 100, currency=cur, dimension=dim)
    for team in org.render_invoice(inv_id)["paasUsage"]["teams"]:
        team_hours = org.render_usage(now=now, team_id=team["id"])
        spent = sum(h["paasUsage"]["price"]["total"] for h in team_hours)
        put(
            m.TEAM_UNBILLED_COST.name,
            spent / 100,
            currency=cur,
            team=team["id"],
            team_name=team["name"],
        )


def cost_series(scrape: Scrape) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {key: value for key, value in scrape.samples.items() if key[0] in m.COST_NAMES}


# --------------------------------------------------------------------------- values


def test_every_series_equals_the_simulators_cents_over_100(sim: Simulator) -> None:
    with Exporter(env=exporter_env(sim)) as exporter:
        scrape = exporter.wait_ready()
    expected = expected_series(sim)
    got = cost_series(scrape)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    assert len(got) > 500  # the demo organisation, every resource type


def test_team_total_comes_from_the_unfiltered_call_not_a_slice(sim: Simulator) -> None:
    result = run_once(sim)
    assert result.returncode == 0, result.stderr
    scrape = parse_exposition(result.stdout)
    inv = sim.org.newest_invoice().id
    team = sim.org.render_invoice(inv)["paasUsage"]["teams"][0]
    slice_ = sim.org.render_invoice(inv, team_id=team["id"], project_id="web")
    slice_total = slice_["paasUsage"]["teams"][0]["price"]["total"]
    assert slice_total != team["price"]["total"]  # the simulator slices, as the page says
    served = scrape.get(m.TEAM_COST.name, currency="usd", team=team["id"], team_name=team["name"])
    assert served == team["price"]["total"] / 100
    paas = scrape.get(m.PAAS_COST.name, currency="usd")
    assert paas == sim.org.render_invoice(inv)["paasUsage"]["price"]["total"] / 100


def test_the_newest_invoice_by_period_end_is_polled(sim: Simulator) -> None:
    listed = sim.org.render_invoice_summaries()
    newest = max(listed, key=lambda inv: inv["period"]["end"])
    assert listed[0]["id"] != newest["id"]  # the list is not in date order
    result = run_once(sim)
    scrape = parse_exposition(result.stdout)
    assert scrape.get(m.INVOICE_INFO.name, invoice_id=newest["id"], currency="usd") == 1


def test_a_pinned_invoice_is_polled_without_listing(sim: Simulator) -> None:
    older = sim.org.render_invoice_summaries()
    pinned = min(older, key=lambda inv: inv["period"]["end"])["id"]
    result = run_once(sim, invoice_id=pinned, unbilled="false")
    scrape = parse_exposition(result.stdout)
    assert scrape.get(m.INVOICE_INFO.name, invoice_id=pinned, currency="usd") == 1
    assert sim.count(path_prefix="/v1/billing/invoices", query_has=None) == 17
    assert not [r for r in sim.requests if r.path == "/v1/billing/invoices"]


@pytest.mark.parametrize(
    ("depth", "pinned", "expected"),
    [
        ("team", False, 2),
        ("team", True, 1),
        ("project", False, 2 + 4),
        ("project", True, 1 + 4),
        ("resource", False, 2 + 4 + 12),
        ("resource", True, 1 + 4 + 12),
    ],
)
def test_requests_per_poll_by_depth(
    sim: Simulator, depth: str, pinned: bool, expected: int
) -> None:
    overrides = {"depth": depth, "unbilled": "false"}  # the reference page's minimum
    if pinned:
        overrides["invoice_id"] = sim.org.newest_invoice().id
    result = run_once(sim, **overrides)
    assert result.returncode == 0, result.stderr
    assert len(billing_requests(sim)) == expected
    team_calls = [r for r in sim.requests if "teamId" in r.query and "projectId" not in r.query]
    project_calls = [r for r in sim.requests if "projectId" in r.query]
    assert len(team_calls) == (4 if depth != "team" else 0)
    assert len(project_calls) == (12 if depth == "resource" else 0)
    assert all(r.query.get("teamId") for r in project_calls)  # project IDs repeat across teams
    assert f"requests={expected} " in result.stderr


@pytest.mark.parametrize("pinned", [False, True])
def test_unbilled_usage_costs_one_call_plus_one_per_team(sim: Simulator, pinned: bool) -> None:
    overrides = {"invoice_id": sim.org.newest_invoice().id} if pinned else {}
    result = run_once(sim, **overrides)
    assert result.returncode == 0, result.stderr
    usage = [r for r in sim.requests if r.path.endswith("/billing/usage")]
    assert len(usage) == 1 + 4
    assert len(billing_requests(sim)) == 2 + 4 + 12 + 5  # the list call is made even when pinned


def test_a_one_team_invoice_needs_no_team_call() -> None:
    with Simulator(generate_organisation(teams=1), token=TOKEN) as sim:
        result = run_once(sim, unbilled="false")
        assert result.returncode == 0, result.stderr
        assert len(billing_requests(sim)) == 2 + 3
        assert not [r for r in sim.requests if "teamId" in r.query and "projectId" not in r.query]
        scrape = parse_exposition(result.stdout)
    assert len(scrape.family(m.PROJECT_COST.name)) == 3
    assert len(scrape.family(m.RESOURCE_TYPE_COST.name)) == 3 * 7


def test_depth_team_exports_no_projects_even_when_the_answer_holds_them() -> None:
    with Simulator(generate_organisation(teams=1), token=TOKEN) as sim:
        result = run_once(sim, unbilled="false", depth="team")
        assert result.returncode == 0, result.stderr
    scrape = parse_exposition(result.stdout)
    assert len(scrape.family(m.TEAM_COST.name)) == 1
    assert scrape.family(m.PROJECT_COST.name) == {}


def test_teams_setting_limits_the_breakdown(sim: Simulator) -> None:
    result = run_once(sim, teams="team-2,team-4")
    assert result.returncode == 0, result.stderr
    assert len(billing_requests(sim)) == 2 + 2 + 6 + 1 + 2  # usage: org-wide and the two teams
    scrape = parse_exposition(result.stdout)
    teams = {dict(labels)["team"] for labels in scrape.family(m.TEAM_COST.name)}
    assert teams == {"team-2", "team-4"}
    assert {dict(lb)["team"] for lb in scrape.family(m.RESOURCE_COST.name)} == teams
    assert scrape.get(m.PAAS_COST.name, currency="usd") is not None  # invoice-wide stays


def test_paged_answers_are_followed() -> None:
    org = generate_organisation(teams=5, projects_per_team=3, resources_per_type=1)
    with Simulator(org, token=TOKEN, page_size=2, max_page_size=2) as sim:
        result = run_once(sim, unbilled="false")
        assert result.returncode == 0, result.stderr
        scrape = parse_exposition(result.stdout)
        paged = [r for r in sim.requests if "cursor" in r.query or "page" in r.query]
    assert len(scrape.family(m.TEAM_COST.name)) == 5
    assert len(scrape.family(m.PROJECT_COST.name)) == 15
    assert len(scrape.family(m.RESOURCE_TYPE_COST.name)) == 15 * 7
    # 3 invoices -> 2 pages; 5 teams -> 3; 3 projects -> 2 per team; 7 resource types -> 4
    assert len(billing_requests(sim)) == 2 + 3 + 5 * 2 + 15 * 4
    assert paged


# --------------------------------------------------------------------------- faults


def test_short_503_burst_is_retried_within_the_poll(sim: Simulator) -> None:
    sim.faults.fail(503, count=2)
    result = run_once(sim)
    assert result.returncode == 0, result.stderr
    scrape = parse_exposition(result.stdout)
    assert scrape.get(m.API_REQUESTS.sample_name, endpoint="list_invoices", code="503") == 2
    assert scrape.get(m.UP.name) == 1


def test_stale_figures_are_dropped_at_the_bound(sim: Simulator) -> None:
    env = exporter_env(sim, max_staleness_seconds="3", poll_interval_seconds="30")
    with Exporter(env=env) as exporter:
        exporter.wait_ready()
        sim.faults.fail(500, count=10_000)
        started = time.monotonic()
        # No poll is due for 30 s: the figures must go at the bound, not at a later poll.
        scrape = exporter.wait_metric(
            m.INVOICE_AMOUNT.name, lambda v: v is None, timeout=10, currency="usd"
        )
        assert time.monotonic() - started < 10
        assert scrape.family(m.TEAM_COST.name) == {}
        assert scrape.get(m.UP.name) == 1  # no poll has failed yet: it is the age
        assert scrape.get(m.BUILD_INFO.name, version=_version()) == 1
        assert exporter.http.get("/-/ready").status_code == 503
        assert "figures dropped" in exporter.logs()


def test_up_goes_to_zero_and_figures_go_stale_after_failures(sim: Simulator) -> None:
    env = exporter_env(sim, max_staleness_seconds="4")
    with Exporter(env=env) as exporter:
        exporter.wait_ready()
        sim.faults.fail(400, count=10_000)
        exporter.wait_metric(m.UP.name, lambda v: v == 0)
        scrape = exporter.wait_metric(
            m.TEAM_COST.name,
            lambda v: v is None,
            team="team-1",
            team_name="Platform Café",
            currency="usd",
        )
        assert (
            scrape.get(
                m.POLL_ERRORS.sample_name,
                reason="http",
            )
            >= 1
        )  # type: ignore[operator]
        sim.faults.reset()
        exporter.wait_metric(m.UP.name, lambda v: v == 1)
        assert exporter.http.get("/-/ready").status_code == 200


def test_connection_refused(sim: Simulator) -> None:
    env = exporter_env(sim)
    sim.stop()
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--once"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "result=connection" in result.stderr


def test_metrics_answer_while_a_poll_hangs(sim: Simulator) -> None:
    env = exporter_env(sim, request_timeout_seconds="5")
    with Exporter(env=env) as exporter:
        exporter.wait_ready()
        sim.faults.hang(count=100, seconds=30)
        time.sleep(1.5)  # a poll is now stuck on a hung request
        for _ in range(20):
            started = time.monotonic()
            response = exporter.http.get("/metrics")
            assert response.status_code == 200
            assert time.monotonic() - started < 1.0
        code, took = exporter.stop()
    assert code == 0
    assert took < 2.0


# --------------------------------------------------------------------------- the process


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(sim: Simulator, sig: int) -> None:
    with Exporter(env=exporter_env(sim)) as exporter:
        exporter.wait_ready()
        code, took = exporter.stop(sig)
        logs = exporter.logs()
    assert code == 0
    assert took < 2.0
    assert "stopped" in logs


def test_once_prints_only_the_exposition(sim: Simulator) -> None:
    result = run_once(sim)
    assert result.returncode == 0
    scrape = parse_exposition(result.stdout)
    assert scrape.get(m.UP.name) == 1
    assert "poll succeeded" in result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith(("# HELP ", "# TYPE ", "northflank_")) for line in lines)


def test_once_fails_with_exit_1_when_the_poll_fails(sim: Simulator) -> None:
    sim.token = "something-else"
    result = run_once(sim, status=1)
    assert result.stdout == ""
    assert "result=auth" in result.stderr
    assert TOKEN not in result.stderr


def test_demo_serves_figures_without_a_token() -> None:
    exporter = Exporter("--demo", env={"NORTHFLANK_LOG_FORMAT": "json"})
    with exporter:
        scrape = exporter.wait_ready(timeout=20)
        page = exporter.http.get("/").text
        logs = exporter.logs()
    assert len(scrape.family(m.RESOURCE_COST.name)) == 4 * 3 * 7
    assert "Last poll: ok" in page
    lines = [json.loads(line) for line in logs.splitlines()]
    polls = [line for line in lines if line["message"] == "poll succeeded"]
    assert polls[0]["requests"] >= 18 + 5  # the first usage calls read every hour so far
    # the token families come a moment later, from the token check after the first poll
    polled = [
        (name, labels)
        for name, labels in scrape.samples
        if name not in (m.TOKEN_INFO.name, m.TOKEN_EXPIRY.name)
        and ("endpoint", "auth") not in labels
    ]
    assert polls[0]["series"] == len(polled)


def test_ready_is_503_before_the_first_poll(sim: Simulator) -> None:
    sim.faults.hang(count=1, seconds=5)
    env = exporter_env(sim, request_timeout_seconds="5")
    with Exporter(env=env) as exporter:
        assert exporter.http.get("/-/ready").status_code == 503
        scrape = exporter.scrape()
        assert scrape.get(m.UP.name) == 0
        assert scrape.family(m.TEAM_COST.name) == {}


def test_content_negotiation(sim: Simulator) -> None:
    with Exporter(env=exporter_env(sim)) as exporter:
        exporter.wait_ready()
        plain = exporter.http.get("/metrics", headers={"Accept-Encoding": "identity"})
        zipped = httpx.get(f"{exporter.url}/metrics", headers={"Accept-Encoding": "gzip"})
        om = exporter.http.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        missing = exporter.http.get("/nope")
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.text == plain.text  # httpx decompressed it
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    assert missing.status_code == 404


def test_token_never_reaches_metrics_or_logs(sim: Simulator) -> None:
    env = exporter_env(sim, log_level="DEBUG")
    with Exporter(env=env) as exporter:
        scrape = exporter.wait_ready()
        sim.token = "other"
        exporter.wait_metric(m.UP.name, lambda v: v == 0)
        logs = exporter.logs()
    assert TOKEN not in scrape.text
    assert TOKEN not in logs


def _version() -> str:
    from exporter import __version__

    return __version__


def test_help_works_without_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0
    assert "NORTHFLANK_DEPTH" in result.stdout


def test_wait_for_helper_times_out() -> None:
    with pytest.raises(AssertionError, match="timed out"):
        wait_for(lambda: False, timeout=0.2)


# --------------------------------------------------------------------------- budget and limits


# The schedule, the stretch and the rate-limit wait are tested in virtual time in
# tests/test_poller.py; these two check what the process adds: its settings from the
# environment, its log line, and the real simulator's headers read over HTTP.


def test_the_stretched_interval_is_logged(sim: Simulator) -> None:
    # 18 requests a poll within 3600 an hour: one poll every 18 s, not every second.
    env = exporter_env(sim, request_budget_per_hour="3600", unbilled="false")
    with Exporter(env=env) as exporter:
        exporter.wait_ready()
        line = wait_for(
            lambda: [
                line
                for line in exporter.logs().splitlines()
                if "polling every 18 s instead of every 1 s" in line
            ],
            5,
        )
    assert "interval_seconds=18.0" in line[0]


def test_polls_wait_for_the_apis_window_when_it_is_nearly_spent(make_sim: MakeSim) -> None:
    sim = make_sim(rate_limit=20)
    with Exporter(env=exporter_env(sim, unbilled="false")) as exporter:
        exporter.wait_ready()
        wait_for(lambda: "for the API's rate-limit window" in exporter.logs(), 5)
        # 18 for the poll, 1 for the token check: 1 left of 20, the next poll waits
        # (for the window's hour: nothing more is sent while this test looks)
        assert len(billing_requests(sim)) == 18
        assert sim.count(path_prefix="/v1/auth") == 1
        assert exporter.value(m.RATELIMIT_REMAINING.name) == 1


def test_concurrency_limit_holds(sim: Simulator) -> None:
    sim.faults.latency = 0.3
    result = run_once(sim, max_concurrency="2")
    assert result.returncode == 0, result.stderr
    scrape = parse_exposition(result.stdout)
    # list, invoice, then 16 calls two at a time: at least 10 x 0.3 s whatever the machine
    duration = scrape.get(m.POLL_DURATION.name)
    assert duration is not None
    assert duration >= 10 * 0.3 - 0.05


def test_ipv6_listen_address(sim: Simulator) -> None:
    """The README's `[::]:9721` form: the server binds IPv6 and answers on it."""
    port = free_port()
    env = exporter_env(sim, listen_address=f"[::1]:{port}")
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter"],
        env={"PATH": "/usr/bin:/bin", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: httpx.get(f"http://[::1]:{port}/-/ready").status_code == 200)
        assert m.TEAM_COST.name in httpx.get(f"http://[::1]:{port}/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 0
