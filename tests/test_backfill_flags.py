"""``northflank-exporter backfill``'s flags and options, and the simulator's usage
history it reads: in process, without the real tools (its request budget is the
client's: tests/test_limits.py)."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest

from exporter import backfill, history
from exporter.settings import SettingsError
from exporter.simulator import (
    HOUR,
    Simulator,
    generate_organisation,
    price_json,
    pricing_invoice,
    usage_entries,
    usage_since,
)
from tests.backfill_helpers import (
    org_now,
)
from tests.harness import TOKEN

# --------------------------------------------------------------------------- flags


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--output", "x"], "--since"),
        (["--since", "2026-01-01"], "--output"),
        (["--since", "last tuesday", "--output", "x"], "--since"),
        (["--since", "2026-02-01", "--until", "2026-01-01", "--output", "x"], "--until"),
        (["--since", "2026-01-01", "--step-seconds", "0", "--output", "x"], "--step-seconds"),
        (["--since", "2026-01-01", "--step-seconds", "1h", "--output", "x"], "--step-seconds"),
        (["--since", "2026-01-01", "--depth", "org", "--output", "x"], "--depth"),
        (["--since", "2026-01-01", "--label", "team=a", "--output", "x"], "--label"),
        (["--since", "2026-01-01", "--label", "currency=a", "--output", "x"], "--label"),
        (["--since", "2026-01-01", "--label", "bad-name=a", "--output", "x"], "--label"),
        (["--since", "2026-01-01", "--label", "__name__=a", "--output", "x"], "--label"),
        (
            ["--since", "2026-01-01", "--label", "job=a", "--label", "job=b", "--output", "x"],
            "--label",
        ),
        (["--since", "2026-01-01", "--label", "job", "--output", "x"], "--label"),
        (["--since", "2026-01-01", "--once", "--output", "x"], "--once"),
        (["--since", "2026-01-01", "--nonsense", "--output", "x"], "--nonsense"),
        (["--since", "2026-01-01", "--api-url", "ftp://x", "--output", "x"], "--api-url"),
        (["--since", "2026-01-01", "--output", "/nonexistent-dir/x.om"], "--output"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("NORTHFLANK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NORTHFLANK_API_TOKEN", "t")
    assert backfill.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("northflank-exporter backfill: ")
    assert says in err


def test_missing_token_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("NORTHFLANK_"):
            monkeypatch.delenv(name)
    assert backfill.main(["--since", "2026-01-01", "--output", "-"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "NORTHFLANK_API_TOKEN" in err


def test_options_parse_dates_depth_and_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORTHFLANK_API_TOKEN", "t")
    monkeypatch.setenv("NORTHFLANK_DEPTH", "resource")  # the exporter's: backfill has its own
    options = backfill.parse(
        [
            "--since",
            "2026-01-01",
            "--until",
            "2026-02-01T12:00:00Z",
            "--output",
            "-",
            "--label",
            "job=northflank",
            "--label",
            'instance=a "b"',
        ],
        now=0,
    )
    assert options.since == 1767225600
    assert options.until == 1769947200
    assert options.settings.depth == "project"
    assert options.step == 3600
    assert options.labels == (("job", "northflank"), ("instance", 'a "b"'))
    assert history.label_text(options.labels) == 'job="northflank",instance="a \\"b\\""'
    deep = backfill.parse(["--since", "1767225600", "--depth", "resource", "--output", "-"])
    assert deep.settings.depth == "resource"
    with pytest.raises(SettingsError):
        backfill.parse(["--since", "2026-01-01", "--output", "-", "--label", "dimension=x"])


# --------------------------------------------------------------------------- the simulator


def test_simulator_serves_past_hours_priced_from_the_invoice_that_bills_them() -> None:
    org = generate_organisation(teams=2, projects_per_team=2, invoices=3, now=org_now())
    oldest, middle, newest = sorted(org.invoices, key=lambda i: i.period_end)
    now = newest.period_end + 5 * HOUR
    start = usage_since(oldest)
    hours = org.render_usage(now=now, start=start, end=start + 3 * HOUR, history=True)
    assert [e["timestamp"] for e in hours] == [start + 2 * HOUR, start + HOUR, start]
    assert hours == usage_entries(
        [start + 2 * HOUR, start + HOUR, start], org.usage_rates(middle), None, now
    )
    assert pricing_invoice(org, start) is middle
    assert pricing_invoice(org, usage_since(middle)) is newest
    assert pricing_invoice(org, usage_since(newest) + HOUR) is newest
    # every hour from the oldest invoice's end, without gaps; none before it
    every = org.render_usage(now=now, history=True, running_hour=False)
    stamps = sorted(e["timestamp"] for e in every)
    assert stamps == list(range(start, int(now), HOUR))
    assert org.render_usage(now=now, end=start, history=True) == []
    # without history: from the newest invoice's end only, as before
    assert org.render_usage(now=now, running_hour=False) == [
        e for e in every if e["timestamp"] >= newest.period_end
    ]
    # a span's hours add up to about the invoice that bills them (factor 0.5..1.5, ~1)
    span = org.render_usage(now=now, start=oldest.period_end, end=middle.period_end, history=True)
    paas = sum(e["paasUsage"]["price"]["total"] for e in span)
    billed = price_json(org.aggregates(middle).paas)["total"]
    assert 0.9 < paas / (billed * len(span) / 720) < 1.1


def test_simulator_api_pages_the_history() -> None:
    org = generate_organisation(teams=2, projects_per_team=1, invoices=3, now=org_now())
    oldest = min(org.invoices, key=lambda i: i.period_end)
    start = oldest.period_end
    query = {"startTime": str(start), "endTime": str(start + 250 * HOUR), "per_page": "100"}
    got: list[Any] = []
    with (
        Simulator(org, token=TOKEN, usage_history=True, running_hour=False) as sim,
        httpx.Client(base_url=sim.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c,
    ):
        while True:
            body = c.get("/v1/teams/team-1/billing/usage", params=query).json()
            got += body["data"]["usage"]
            if not body["pagination"]["hasNextPage"]:
                break
            query["cursor"] = body["pagination"]["cursor"]
    assert len(got) == 250
    assert got == org.render_usage(
        now=time.time(),
        start=start,
        end=start + 250 * HOUR,
        team_id="team-1",
        history=True,
        running_hour=False,
    )
    assert got[-1]["paasUsage"]["price"] == price_json(
        org.usage_rates(pricing_invoice(org, int(start))).team_hour("team-1", int(start))
    )
