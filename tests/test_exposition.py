"""Answers -> snapshot -> exposition, byte for byte, for a small fixed organisation, in
both billing contracts.

The golden files ``tests/golden/small.prom`` (the organisation's answers in the legacy
contract) and ``tests/golden/small-current.prom`` (the same answers in the current one:
:func:`tests.contracts.to_current`) are the clearest specification of the metrics there
is; their cost families are the same bytes but for what only the current contract has
(the invoice's status, the credit balance). To update them after an intended change:
``UPDATE_GOLDEN=1 python -m pytest tests/test_exposition.py`` and read the diff.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from exporter import metrics as m
from exporter.api import current, legacy
from exporter.api.model import Credit
from exporter.api.read import as_major
from exporter.bodies import expose
from exporter.encoding import labels
from exporter.own import Health
from exporter.settings import View
from exporter.snapshot import Answers, Snapshot, build
from exporter.unbilled import advance
from tests.contracts import ONLY_CURRENT, cost_lines, to_current

GOLDEN = Path(__file__).parent / "golden"

PRICE_A = {"total": 12345, "cpu": 10000, "memory": 2345}  # storage and gpu left out
UNFILTERED = {
    "id": "inv-1",
    "period": {"start": 1759276800, "end": 1761955200},
    "currency": "usd",
    "byocUsage": {
        "price": {"total": 5000, "vcpu": 3000, "memory": 1000, "gpuMemory": 0, "cluster": 1000}
    },
    "paasUsage": {
        "price": {"total": 20345, "cpu": 16000, "memory": 4345, "storage": 0, "gpu": 0},
        "teams": [
            {"id": "team-a", "name": 'Team "A"', "price": PRICE_A},
            {
                "id": "team-b",
                "name": "Équipe B",
                "price": {"total": 8000, "cpu": 6000, "memory": 2000},
            },
        ],
    },
    "lineItems": [
        {"title": "PaaS usage", "total": 20345, "base": 20345, "proration": 0},
        {"title": "Support", "total": 1000, "base": 1500, "proration": -500},
        {"title": "Support", "total": 500},
    ],
    "subTotal": 26845,
    "discounts": {"total": 845},
    "tax": {"percent": 20, "amount": 5200},
    "total": 31200,
    "paid": False,
}
TEAM_A = {
    "id": "inv-1",
    "paasUsage": {
        "teams": [
            {
                "id": "team-a",
                "name": 'Team "A"',
                "price": PRICE_A,
                "projects": [{"id": "web", "name": "Web\\shop", "price": PRICE_A}],
            }
        ]
    },
}
PROJECT_A_WEB = {
    "id": "inv-1",
    "paasUsage": {
        "teams": [
            {
                "id": "team-a",
                "price": {"total": 1},  # the filtered slice: must never be used
                "projects": [
                    {
                        "id": "web",
                        "price": PRICE_A,
                        "resourceTypes": [
                            {
                                "resourceType": "service",
                                "price": PRICE_A,
                                "resources": [
                                    {"id": "svc-1", "name": "front\nend", "price": PRICE_A}
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    },
}
HOUR = {
    "timestamp": 1761955200,
    "paasUsage": {"price": {"total": 250, "cpu": 200, "memory": 50}},
    "byocUsage": {"price": {"total": 100, "vcpu": 100}},
}
TEAM_HOUR = {"timestamp": 1761955200, "paasUsage": {"price": {"total": 150.5, "cpu": 150.5}}}
CREDIT = Credit("usd", 120.5, 30.0, 100.0, 30.0, -12.25, 1764583200.0)
HEALTH = Health(
    version="1.2.3",
    up=True,
    last_success=1761955300.5,
    poll_duration=0.25,
    poll_errors={"timeout": 2},
    api_requests={("get_invoice", "200"): 3, ("list_invoices", "200"): 1},
    ratelimit_remaining=996,
    token_entity=("org", "acme"),
    token_expiry=1798761600.5,
)


def read(doc: dict[str, Any], contract: str) -> Any:
    """A legacy document, read as the answer of ``contract`` (converted to it first)."""
    if contract == "legacy":
        return legacy.DIALECT.invoice(doc, legacy.DIALECT.scale)
    return current.DIALECT.invoice(to_current(doc), current.DIALECT.scale)


def hour(doc: dict[str, Any], contract: str) -> Any:
    dialect = legacy.DIALECT if contract == "legacy" else current.DIALECT
    return dialect.usage_entry(doc if contract == "legacy" else to_current(doc), dialect.scale)


def small_exposition(contract: str = "legacy") -> bytes:
    invoice = read(UNFILTERED, contract)
    team_a = read(TEAM_A, contract).teams[0]
    web = read(PROJECT_A_WEB, contract).teams[0].projects[0]
    usage = advance(
        None, "inv-1", 1761955200, [hour(HOUR, contract)], {"team-a": [hour(TEAM_HOUR, contract)]}
    )
    answers = Answers(
        None,
        invoice,
        teams={"team-a": team_a},
        projects={("team-a", "web"): web.resource_types},
        usage=usage,
        contract=invoice.contract,
        credit=CREDIT if contract == "current" else None,
    )
    snapshot = build(answers, View(budgets={"team-a": 500, "*": 100.5, "team-gone": 1}))
    health = dataclasses.replace(HEALTH, contract=contract)
    return expose(snapshot, health).text.plain


def unfiltered(view: View | None = None, contract: str = "legacy") -> Snapshot:
    """The snapshot of the unfiltered answer alone."""
    return build(Answers(None, read(UNFILTERED, contract), {}, {}), view or View())


@pytest.mark.parametrize("contract", ["legacy", "current"])
def test_golden_text_exposition(contract: str) -> None:
    body = small_exposition(contract)
    golden = GOLDEN / ("small.prom" if contract == "legacy" else "small-current.prom")
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_bytes(body)
    assert body.decode() == golden.read_text()


def test_both_contracts_give_the_same_cost_families() -> None:
    """The same answers in cents and in major units: the same bytes, but for what only
    the current contract has."""
    legacy_lines = cost_lines(small_exposition("legacy").decode())
    current_lines = cost_lines(small_exposition("current").decode())
    assert legacy_lines == {k: v for k, v in current_lines.items() if k not in ONLY_CURRENT}
    assert set(current_lines) - set(legacy_lines) == ONLY_CURRENT
    status = current_lines[m.INVOICE_STATUS.name]
    assert status == ['northflank_invoice_status{status="open"} 1.0']


def test_a_current_amount_is_never_divided_by_100() -> None:
    """The same figure in both contracts: 1234.5 cents is 12.345, and 12.345 is 12.345."""
    body = small_exposition("current").decode()
    assert (
        'northflank_team_cost{currency="usd",team="team-a",team_name="Team \\"A\\""} 123.45' in body
    )
    assert (
        'northflank_team_unbilled_cost{currency="usd",team="team-a",team_name="Team \\"A\\""} 1.505'
        in body
    )
    assert 'northflank_credit_available_amount{currency="usd"} 120.5' in body
    assert 'northflank_customer_balance_amount{currency="usd"} -12.25' in body
    assert "northflank_credit_synced_timestamp_seconds 1.7645832e+09" in body
    assert 'northflank_api_contract_info{contract="current"} 1.0' in body


def test_team_total_never_comes_from_a_filtered_slice() -> None:
    body = small_exposition().decode()
    assert (
        'northflank_team_cost{currency="usd",team="team-a",team_name="Team \\"A\\""} 123.45' in body
    )


def test_missing_fields_give_no_sample() -> None:
    body = small_exposition().decode()
    assert 'team="team-a",team_name="Team \\"A\\"",dimension="storage"' not in body
    assert 'dimension="gpu_memory"} 0.0' in body  # a zero the API sent is a sample


def test_line_items_with_one_title_are_added() -> None:
    body = small_exposition().decode()
    assert 'northflank_invoice_line_item_amount{currency="usd",item="Support"} 15.0' in body
    # base: 15.00 from the first, none from the second
    assert 'northflank_invoice_line_item_base_amount{currency="usd",item="Support"} 15.0' in body


def test_amount_unit_major_takes_amounts_as_they_are() -> None:
    invoice = legacy.DIALECT.invoice(UNFILTERED, as_major)  # NORTHFLANK_AMOUNT_UNIT=major
    snapshot = build(Answers(None, invoice, {}, {}), View())
    assert snapshot.invoice.total == 31200
    assert snapshot.teams[0].price.total == 12345


def test_teams_setting_restricts_team_families_only() -> None:
    snapshot = unfiltered(View(teams=frozenset({"team-b"})))
    assert [team.id for team in snapshot.teams] == ["team-b"]
    assert snapshot.invoice.paas is not None
    assert snapshot.invoice.paas.total == 203.45


def test_openmetrics_and_gzip_bodies() -> None:
    exposition = expose(unfiltered(), HEALTH)
    text_gzip = b"".join(exposition.text.gzipped)  # one gzip member, in parts
    assert gzip.decompress(text_gzip) == exposition.text.plain
    assert gzip.decompress(b"".join(exposition.openmetrics.gzipped)) == exposition.openmetrics.plain
    om = exposition.openmetrics.plain.decode()
    assert om.endswith("# EOF\n")
    assert "# TYPE northflank_poll_errors counter" in om
    assert 'northflank_poll_errors_total{reason="timeout"} 2.0' in om


@pytest.mark.tools
@pytest.mark.parametrize("contract", ["legacy", "current"])
def test_golden_passes_promtool(promtool: str, contract: str) -> None:
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=small_exposition(contract),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == b""


def test_exporter_own_metrics_alone_before_the_first_poll() -> None:
    body = expose(None, Health(version="9")).text.plain.decode()
    assert "northflank_up 0.0" in body
    assert 'northflank_exporter_build_info{version="9"} 1.0' in body
    assert 'northflank_poll_errors_total{reason="auth"} 0.0' in body
    assert m.TEAM_COST.name not in body
    assert "python_gc" not in body
    assert "process_" not in body


@pytest.mark.parametrize("contract", ["legacy", "current"])
def test_sample_count(contract: str) -> None:
    exposition = expose(unfiltered(contract=contract), HEALTH)
    lines = [line for line in exposition.text.plain.decode().splitlines() if line[:1] != "#"]
    assert exposition.samples == len(lines)


def test_openmetrics_body_parses_as_openmetrics() -> None:
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as parse_openmetrics,
    )
    from prometheus_client.parser import text_string_to_metric_families as parse_text

    exposition = expose(unfiltered(), HEALTH)

    def samples(families: object) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
        return {
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for family in families  # type: ignore[attr-defined]
            for s in family.samples
        }

    om = samples(parse_openmetrics(exposition.openmetrics.plain.decode()))
    text = samples(parse_text(exposition.text.plain.decode()))
    assert om == text
    assert len(om) == exposition.samples


def test_label_values_are_escaped() -> None:

    assert labels(a='q"b\\n\nx') == 'a="q\\"b\\\\n\\nx"'
