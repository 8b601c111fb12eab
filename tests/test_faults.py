"""The fault matrix: each row a fault of the API, against the exporter process.

For every row: the process stays up, ``/metrics`` keeps answering with the last good
figures, ``northflank_up`` goes to 0, the failed poll is counted once under the right
reason, the log says what happened in one line without the token, and once the fault
clears the next poll succeeds. The outcomes are listed in docs/reliability.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from exporter import metrics as m
from exporter.simulator import Organisation, Simulator, generate_organisation
from tests.harness import TOKEN, Exporter, Scrape, api_env, free_port

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Fault:
    reason: str
    start: Callable[[Simulator], None]
    log: str  # what the failure's log line must say


def _null_fields(sim: Simulator) -> None:
    """A 200 whose body is the invoice with a field of the wrong type (a string total)."""
    inv = sim.org.newest_invoice().id
    data = sim.org.render_invoice(inv, contract="current")  # what the exporter asks for
    data["paas"]["teams"][0]["price"]["total"] = "a lot"
    sim.faults.fail(
        200,
        count=10_000,
        body=json.dumps({"data": data}),
        match=lambda path, query: path.endswith(inv) and not query.get("teamId"),
    )


def _forbid(sim: Simulator) -> None:
    """The token is known but lacks the billing permission."""
    sim.token = "someone-elses"
    sim.forbidden_tokens = frozenset({TOKEN})


def _refuse(sim: Simulator) -> None:
    sim.stop()


def _window(sim: Simulator) -> None:
    sim.rate_limit = 0  # every request from now on is over the limit


FAULTS: dict[str, Fault] = {
    "503-burst": Fault("http", lambda s: s.faults.fail(503, count=10_000), "HTTP 503"),
    "500-burst": Fault("http", lambda s: s.faults.fail(500, count=10_000), "HTTP 500"),
    "429-retry-after": Fault(
        "rate_limited", lambda s: s.faults.fail(429, count=10_000, retry_after=0.2), "HTTP 429"
    ),
    "429-ratelimit-reset": Fault(
        "rate_limited",
        lambda s: s.faults.fail(429, count=10_000, ratelimit_reset=0.2),
        "HTTP 429",
    ),
    "hung-connection": Fault(
        "timeout", lambda s: s.faults.hang(count=10_000, seconds=3), "no answer within"
    ),
    "connection-refused": Fault("connection", _refuse, "ConnectError"),
    "malformed-json": Fault(
        "invalid_response", lambda s: s.faults.malformed(count=10_000, kind="json"), "not JSON"
    ),
    "truncated-json": Fault(
        "invalid_response",
        lambda s: s.faults.malformed(count=10_000, kind="truncated"),
        "not JSON",
    ),
    "html-with-200": Fault(
        "invalid_response",
        lambda s: s.faults.malformed(count=10_000, kind="html"),
        "not JSON (text/html",
    ),
    "wrong-shape": Fault(
        "invalid_response",
        lambda s: s.faults.malformed(count=10_000, kind="schema"),
        "unexpected answer",
    ),
    "wrong-type": Fault(
        "invalid_response", _null_fields, "unexpected answer at paas.teams[0].price.total"
    ),
    "401": Fault("auth", lambda s: setattr(s, "token", "rotated"), "HTTP 401"),
    "403": Fault("auth", _forbid, "HTTP 403"),
    "404": Fault("not_found", lambda s: s.faults.fail(404, count=10_000), "HTTP 404"),
    "rate-limit-window-spent": Fault("rate_limited", _window, "HTTP 429"),
}


@pytest.fixture
def sim_org() -> Organisation:
    return generate_organisation(teams=2, projects_per_team=2)


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {
        "port": free_port(),  # a fixed port: connection-refused restarts the simulator on it
        "rate_window_seconds": 1,
        "running_hour": False,  # the figures must not move between polls unless a test does
    }


def env(sim: Simulator) -> dict[str, str]:
    # every poll reads the breakdown again, so that a fault in any answer meets a poll
    return api_env(sim.url, TOKEN, invoice_refresh_seconds="0")


def costs(scrape: Scrape) -> dict[object, float]:
    return {key: value for key, value in scrape.samples.items() if key[0] in m.COST_NAMES}


def clear(sim: Simulator, name: str) -> None:
    sim.faults.reset()
    sim.token = TOKEN
    sim.forbidden_tokens = frozenset()
    sim.rate_limit = 1000
    if name == "connection-refused":
        sim.start()  # same port: the exporter's URL still points here


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault(sim: Simulator, name: str) -> None:
    fault = FAULTS[name]
    with Exporter(env=env(sim)) as exporter:
        good = costs(exporter.wait_ready())
        assert exporter.value(m.POLL_ERRORS.sample_name, reason=fault.reason) == 0
        fault.start(sim)
        failed = exporter.wait_metric(m.UP.name, lambda v: v == 0, timeout=30)
        assert failed.get(m.POLL_ERRORS.sample_name, reason=fault.reason) >= 1  # type: ignore[operator]
        assert costs(failed) == good  # last good figures still served
        assert exporter.http.get("/-/ready").status_code == 200  # within the staleness bound
        assert exporter.http.get("/-/healthy").status_code == 200
        clear(sim, name)
        recovered = exporter.wait_metric(m.UP.name, lambda v: v == 1, timeout=30)
        assert costs(recovered) == good
        logs = exporter.logs()
    failures = [line for line in logs.splitlines() if "poll failed" in line]
    assert failures, logs
    for line in failures:
        assert f"result={fault.reason} " in line
        assert fault.log in line, line
    assert recovered.get(m.POLL_ERRORS.sample_name, reason=fault.reason) == len(failures)
    assert sum(recovered.family(m.POLL_ERRORS.sample_name).values()) == len(failures)
    assert TOKEN not in logs
    assert "Traceback" not in logs


def test_unknown_fields_and_new_resource_types_are_carried_through(sim: Simulator) -> None:
    inv = sim.org.newest_invoice().id
    data = sim.org.render_invoice(inv, team_id="team-1", project_id="web", contract="current")
    team = data["paas"]["teams"][0]
    team["brandNewField"] = {"nested": [1, 2, 3]}
    team["projects"][0]["resourceTypes"].append(
        {
            "resourceType": "quantum-annealer",
            "price": {"total": 42, "qubits": 42},  # major units, as the current contract says
            "resources": [{"id": "qa-1", "name": "Annealer", "price": {"total": 42}}],
        }
    )
    sim.faults.fail(
        200,
        count=10_000,
        body=json.dumps({"data": data, "somethingNew": True}),
        match=lambda path, query: (
            query.get("projectId") == "web" and query.get("teamId") == "team-1"
        ),
    )
    with Exporter(env=env(sim)) as exporter:
        scrape = exporter.wait_ready()
    where = {"currency": "usd", "team": "team-1", "project": "web"}
    assert scrape.get(m.RESOURCE_TYPE_COST.name, resource_type="quantum-annealer", **where) == 42
    assert (
        scrape.get(
            m.RESOURCE_COST.name,
            resource_type="quantum-annealer",
            resource="qa-1",
            resource_name="Annealer",
            **where,
        )
        == 42
    )
    # a dimension the exporter does not know is not invented, and nothing missing is zero
    dims = scrape.family(m.RESOURCE_TYPE_DIMENSION_COST.name)
    assert not [labels for labels in dims if ("resource_type", "quantum-annealer") in labels]


def test_pinned_invoice_that_does_not_exist(sim: Simulator) -> None:
    environment = {**env(sim), "NORTHFLANK_INVOICE_ID": "inv-nope", "NORTHFLANK_UNBILLED": "false"}
    with Exporter(env=environment) as exporter:
        scrape = exporter.wait_metric(
            m.POLL_ERRORS.sample_name, lambda v: (v or 0) >= 1, reason="not_found"
        )
        assert exporter.http.get("/-/ready").status_code == 503
        logs = exporter.logs()
    assert scrape.get(m.UP.name) == 0
    assert "HTTP 404" in logs
