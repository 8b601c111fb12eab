"""``northflank-exporter check`` end to end: the command as a process against the simulator
on loopback, in each of its modes.

For each mode: the exit status, each point's status, the requests (as the simulator saw
them: at most ten, and as many as the report says), and that nothing of the
organisation's that is secret or personal reaches stdout or stderr: its team, project
and resource names (made distinctive here, so that the search cannot miss), its amounts
in either contract's unit, the token. ``--json`` is parsed and read field by field, and
the costs it predicts are what the exporter then spends.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from exporter.simulator import HOUR, ManualClock, Organisation, Simulator, generate_organisation
from tests.harness import Exporter, MakeSim, api_env, wait_for

pytestmark = pytest.mark.e2e
SECRET_TOKEN = "nf-Tk-Ossifrage-93f1c2"  # searched for in the output
OTHER_TOKEN = "nf-Tk-Bilbo-no-billing"
POINTS = ["token", "invoices", "invoice", "usage", "credit", "ratelimit"]


def distinctive() -> Organisation:
    """The demo organisation, every team, project and resource renamed to something that
    cannot appear in the output by chance."""
    org = generate_organisation()
    with org.mutate() as data:
        for index, team in enumerate(data.teams):
            team.name = f"Zorblax Guild {index}"
        for invoice in data.invoices:
            for index, team in enumerate(invoice.teams):
                team.name = f"Zorblax Guild {index}"
                for number, project in enumerate(team.projects):
                    project.name = f"Quillwort Venture {index}-{number}"
                    for resource in project.resources:
                        resource.name = f"Vexillum Engine {resource.id} {index}-{number}"
    return org


def secrets_of(sim: Simulator) -> set[str]:
    """The names, and every amount of the newest invoice, its list, usage and credit balance
    as either contract writes them (long enough not to be a count or a date by chance)."""
    org = sim.org
    found = {SECRET_TOKEN}
    for invoice in org.invoices:
        for team in invoice.teams:
            found.add(team.name)
            for project in team.projects:
                found.add(project.name)
                found.update(resource.name for resource in project.resources)
    invoice = org.newest_invoice().id
    now = sim.clock()
    documents: list[Any] = [org.render_credit_balance(now=now)] if org.credit else []
    for contract in ("current", "legacy"):
        documents.append(org.render_invoice(invoice, contract=contract))
        documents.append(org.render_invoice_summaries(contract=contract))
        documents.append(
            org.render_usage(now=now, start=now - 6 * HOUR, end=now, contract=contract)
        )
    for document in documents:
        for number in _numbers(document):
            text = json.dumps(number)
            if "." in text.rstrip("0").rstrip(".") or len(text) >= 5:
                found.add(text)
    return found


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in ("timestamp", "start", "end", "period", "percent"):
                yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, int | float) and not isinstance(value, bool) and value:
        yield value


def simulator(make_sim: MakeSim, contract: str = "current", **options: Any) -> Simulator:
    org = options.pop("org", None) or distinctive()
    clock = ManualClock(org.newest_invoice().period_end + 5.5 * HOUR)
    return make_sim(org, clock=clock, contract=contract, token=SECRET_TOKEN, **options)


def check(
    sim: Simulator | None, *args: str, token: str = SECRET_TOKEN, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if sim is not None:
        env.update(NORTHFLANK_API_URL=sim.url, NORTHFLANK_API_TOKEN=token)
    env.update({f"NORTHFLANK_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "exporter", "check", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def day(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def statuses(stdout: str) -> dict[str, str]:
    """Each point's status, from the text report's lines."""
    found = {}
    for line in stdout.splitlines()[:-1]:
        status, name = line.split()[:2]
        found[name] = status
    return found


def assert_clean(sim: Simulator, result: subprocess.CompletedProcess[str]) -> None:
    said = result.stdout + result.stderr
    secrets = secrets_of(sim)
    assert {"Zorblax Guild 0", "Quillwort Venture 0-0", SECRET_TOKEN} <= secrets
    assert len(secrets) > 100  # the amounts too
    leaked = sorted(secret for secret in secrets if secret in said)
    assert not leaked, leaked


def assert_requests(sim: Simulator, result: subprocess.CompletedProcess[str], count: int) -> None:
    assert len(sim.requests) == count <= 10
    assert re.search(rf"; {count} requests\)", result.stdout.splitlines()[-1])


# --------------------------------------------------------------------------- each mode


MODES: dict[str, tuple[str, dict[str, Any], dict[str, str], int, dict[str, str], int]] = {
    # mode: simulator contract, its options, settings, exit status, statuses but "ok", requests
    "current": ("current", {}, {}, 0, {}, 8),
    "legacy account": ("legacy-pinned", {}, {}, 0, {}, 7),
    "legacy, pinned by the setting": ("legacy", {}, {"api_contract": "legacy"}, 0, {}, 7),
    "single-team token": ("current", {"single_team": "team-2"}, {}, 0, {}, 7),
    "granularity=total refused": (
        "current", {"granularity_total": False}, {}, 0, {"usage": "warn"}, 8,
    ),
    "no billing permission (403)": (
        "current", {"no_billing_tokens": [OTHER_TOKEN]}, {"api_token": OTHER_TOKEN}, 1,
        {"token": "warn", "invoices": "fail", "invoice": "warn", "usage": "fail", "credit": "warn"},
        3,
    ),
}  # fmt: skip


@pytest.mark.parametrize("mode", list(MODES))
def test_each_mode_says_what_it_found(make_sim: MakeSim, mode: str) -> None:
    contract, options, settings, status, expected, requests = MODES[mode]
    sim = simulator(make_sim, contract, **options)
    result = check(sim, **settings)
    assert result.returncode == status, result.stdout + result.stderr
    assert statuses(result.stdout) == {name: expected.get(name, "ok") for name in POINTS}
    assert_requests(sim, result, requests)
    assert_clean(sim, result)
    verdict = result.stdout.splitlines()[-1]
    assert verdict.startswith("fail: " if status else ("warn: " if expected else "ok: "))
    assert result.stderr == ""


def test_the_points_say_what_each_answer_was(make_sim: MakeSim) -> None:
    sim = simulator(make_sim, "legacy-pinned")
    result = check(sim)
    lines = dict(line.split(None, 2)[1:] for line in result.stdout.splitlines()[:-1])
    assert lines["token"].startswith("an org token (sim-org), no expiry; billing read listed")
    newest = sim.org.newest_invoice()
    invoice, start, end = newest.id, day(newest.period_start), day(newest.period_end)
    assert lines["invoices"] == (
        "legacy contract; 3 on the first page (paging: pagination{count, cursor, "
        f"hasNextPage}}); the newest {invoice}, {start} to {end}"
    )
    assert lines["invoice"].startswith(
        f"{invoice} unfiltered: legacy contract, starts at teams, 4 teams; the teams' "
    )
    assert "add up to the PaaS total (within half a cent)" in lines["invoice"]
    assert "hourly entries (the legacy contract has no granularity)" in lines["usage"]
    assert "the newest hourly entry starts at" in lines["usage"]
    assert lines["credit"] == "not asked: the legacy contract has no credit balance"


def test_an_answer_in_neither_contract_fails_with_its_shape(make_sim: MakeSim) -> None:
    sim = simulator(make_sim)
    name = "Zorblax Guild 0"
    body = {"data": {"id": sim.org.newest_invoice().id, "currency": "usd", "title": name}}
    sim.faults.fail(
        200, count=100, body=json.dumps(body), match=lambda path, q: "/invoices/" in path
    )
    result = check(sim)
    assert result.returncode == 1
    assert statuses(result.stdout)["invoice"] == "fail"
    [line] = [x for x in result.stdout.splitlines()[:-1] if x.split()[1] == "invoice"]
    assert line.endswith(
        "GET /v1/billing/invoices/{id}: an answer in neither billing contract (keys of data: "
        "currency, id, title); the answer's shape: "
        "{data: {id: string, currency: string, title: string}}"
    )
    assert result.stdout.splitlines()[-1].startswith("fail: invoice ")
    assert "paste this output into a northflank-exporter issue" in result.stdout
    assert_requests(sim, result, 6)  # no team or project to ask
    assert_clean(sim, result)


def test_an_invalid_token_fails_and_is_never_printed(make_sim: MakeSim) -> None:
    sim = simulator(make_sim)
    result = check(sim, token="nf-Tk-Wrong-Wrong-7")
    assert result.returncode == 1
    found = statuses(result.stdout)
    assert (found["token"], found["invoices"], found["usage"]) == ("fail", "fail", "fail")
    assert "HTTP 401" in result.stdout
    assert "nf-Tk-Wrong-Wrong-7" not in result.stdout + result.stderr
    assert result.stdout.count("check the API token") == 1  # what to check, said once


def test_no_more_than_ten_requests_whatever_the_organisation(make_sim: MakeSim) -> None:
    """Twelve teams, a team a page: the unfiltered invoice alone would take 12 requests."""
    org = generate_organisation(teams=12)
    sim = simulator(make_sim, org=org, max_page_size=1)
    result = check(sim)
    assert len(sim.requests) == 10
    assert result.returncode == 0, result.stdout
    found = statuses(result.stdout)
    assert "warn" in found.values()
    assert "not checked: " in result.stdout
    assert "the 10 requests are spent" in result.stdout


# --------------------------------------------------------------------------- --json


def test_json_says_the_same_points_field_by_field(make_sim: MakeSim) -> None:
    sim = simulator(make_sim)
    result = check(sim, "--json")
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert (doc["status"], doc["requests"]) == ("ok", len(sim.requests))
    assert list(doc["points"]) == POINTS
    points = doc["points"]
    assert all(point["status"] == "ok" and point["says"] for point in points.values())
    token = points["token"]
    assert (token["entity_type"], token["entity_id"]) == ("org", "sim-org")
    assert token["expires_at"] is None
    assert token["billing_read"] == "Organisation > Admin > Billing > Read"
    newest = sim.org.newest_invoice()
    listed = points["invoices"]
    assert (listed["contract"], listed["count"], listed["has_next_page"]) == ("current", 3, False)
    assert listed["paging"] == ["count", "cursor", "hasNextPage"]
    assert (listed["newest"], listed["period_start"], listed["period_end"]) == (
        newest.id, day(newest.period_start), day(newest.period_end),
    )  # fmt: skip
    invoice = points["invoice"]
    assert invoice["id"] == newest.id
    assert (invoice["contract"], invoice["starts_at"], invoice["teams"]) == ("current", "teams", 4)
    assert invoice["adds_up"] is True
    assert set(invoice["resource_types"]) == {
        r.resource_type for r in newest.teams[0].projects[0].resources
    }
    usage = points["usage"]
    assert (usage["granularity_total"], usage["contract"]) == ("taken", "current")
    assert 0 <= usage["newest_age_seconds"] <= 3600
    assert points["credit"]["present"] is True
    assert points["credit"]["currency"] == "usd"
    rate = points["ratelimit"]
    assert (rate["limit"], rate["remaining"]) == (1000, 1000 - doc["requests"])
    assert (rate["reserve"], rate["budget"], rate["depth"]) == (100, 900, "resource")
    assert (rate["first_read"], rate["later_poll"]) == (24, 7)
    assert rate["polls_an_hour"] == 4.0  # every 900 s: the budget allows more
    assert_clean(sim, result)


@pytest.mark.parametrize("depth", ["team", "project", "resource"])
def test_the_predicted_cost_is_what_the_exporter_spends(make_sim: MakeSim, depth: str) -> None:
    sim = simulator(make_sim)
    doc = json.loads(check(sim, "--json", depth=depth).stdout)
    predicted = doc["points"]["ratelimit"]
    env = api_env(sim.url, SECRET_TOKEN, depth=depth, poll_interval_seconds="1")
    with Exporter(env=env) as process:
        wait_for(lambda: process.logs().count("poll succeeded") >= 2)
        logs = process.logs()
    spent = [int(n) for n in re.findall(r"poll succeeded .*? requests=(\d+) ", logs)]
    assert spent[:2] == [predicted["first_read"], predicted["later_poll"]]
    assert predicted["estimated"] is (depth == "resource")  # 3 projects in each team here


# --------------------------------------------------------------------------- the command


def test_the_demo_in_both_contracts() -> None:
    demos = (([], "current", 8), (["--demo-contract", "legacy"], "legacy", 7))
    for args, contract, requests in demos:
        result = check(None, "--demo", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert statuses(result.stdout) == dict.fromkeys(POINTS, "ok")
        assert f"invoices   {contract} contract; 3 on the first page" in result.stdout
        assert result.stdout.splitlines()[-1] == (
            f"ok: the exporter can read this account (6 ok, 0 warn, 0 fail; {requests} requests)"
        )


@pytest.mark.parametrize(
    ("args", "settings", "says"),
    [
        ([], {"depth": "deep"}, "NORTHFLANK_DEPTH: "),
        (["--once"], {}, "--once: not a check flag"),
        ([], {"request_budget_per_hour": "0"}, "NORTHFLANK_REQUEST_BUDGET_PER_HOUR: "),
    ],
)
def test_a_bad_setting_exits_2_with_one_line(
    make_sim: MakeSim, args: list[str], settings: dict[str, str], says: str
) -> None:
    sim = simulator(make_sim)
    result = check(sim, *args, **settings)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"northflank-exporter check: {says}")
    assert result.stderr.count("\n") == 1
    assert sim.requests == []
