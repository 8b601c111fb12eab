"""Snapshot -> exposition, byte for byte, for a small fixed organisation.

The golden file ``tests/golden/small.prom`` is the clearest specification of the metrics
there is. To update it after an intended change: ``UPDATE_GOLDEN=1 python -m pytest
tests/test_exposition.py`` and read the diff.
"""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path
from typing import Literal

import pytest

from exporter import metrics as m
from exporter import models
from exporter.bodies import expose
from exporter.encoding import labels
from exporter.metrics import Health
from exporter.settings import View
from exporter.snapshot import Answers, Snapshot, build, resource_types
from exporter.unbilled import advance

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


def small_exposition() -> bytes:
    invoice = models.Invoice.model_validate(UNFILTERED)
    team_a = models.Invoice.model_validate(TEAM_A).teams[0]
    web = models.Invoice.model_validate(PROJECT_A_WEB).teams[0].projects[0]  # type: ignore[index]
    hour = models.UsageEntry.model_validate(
        {
            "timestamp": 1761955200,
            "paasUsage": {"price": {"total": 250, "cpu": 200, "memory": 50}},
            "byocUsage": {"price": {"total": 100, "vcpu": 100}},
        }
    )
    team_hour = models.UsageEntry.model_validate(
        {"timestamp": 1761955200, "paasUsage": {"price": {"total": 150.5, "cpu": 150.5}}}
    )
    usage = advance(None, "inv-1", 1761955200, [hour], {"team-a": [team_hour]})
    answers = Answers(
        None,
        invoice,
        teams={"team-a": team_a},
        projects={("team-a", "web"): resource_types(web)},
        usage=usage,
    )
    snapshot = build(answers, View(budgets={"team-a": 500, "*": 100.5, "team-gone": 1}))
    return expose(snapshot, HEALTH).text.plain


def unfiltered(view: View | None = None) -> Snapshot:
    """The snapshot of the unfiltered answer alone."""
    invoice = models.Invoice.model_validate(UNFILTERED)
    return build(Answers(None, invoice, {}, {}), view or View())


def test_golden_text_exposition() -> None:
    body = small_exposition()
    golden = GOLDEN / "small.prom"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_bytes(body)
    assert body.decode() == golden.read_text()


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
    snapshot = unfiltered(View(amount_unit="major"))
    assert snapshot.invoice.total == 31200
    assert snapshot.teams[0].cost.total == 12345


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
def test_golden_passes_promtool(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=small_exposition(),
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


@pytest.mark.parametrize("unit", ["cents", "major"])
def test_sample_count(unit: Literal["cents", "major"]) -> None:
    exposition = expose(unfiltered(View(amount_unit=unit)), HEALTH)
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
