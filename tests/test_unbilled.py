"""Window arithmetic of unbilled usage, and budgets parsing. Pure functions, no I/O."""

from __future__ import annotations

import pytest

from exporter import models
from exporter.unbilled import HOUR, Sum, advance, budget_for, parse_budgets

SINCE = 1_761_955_200.0  # an invoice's period end, on the hour


def hour(index: int, cpu: float = 100, byoc_vcpu: float | None = None) -> models.UsageEntry:
    data: dict[str, object] = {
        "timestamp": SINCE + index * HOUR,
        "paasUsage": {"price": {"total": cpu + 10, "cpu": cpu, "memory": 10}},
    }
    if byoc_vcpu is not None:
        data["byocUsage"] = {"price": {"total": byoc_vcpu, "vcpu": byoc_vcpu}}
    return models.UsageEntry.model_validate(data)


def test_a_fresh_window_is_zero_and_through_equals_since() -> None:
    window = advance(None, "inv-1", SINCE, [])
    assert window.since == window.through == SINCE
    assert window.total == 0
    assert dict(window.paas.dimensions) == {"cpu": 0, "memory": 0, "storage": 0, "gpu": 0}
    assert dict(window.byoc.dimensions) == {"vcpu": 0, "memory": 0, "gpu_memory": 0, "cluster": 0}


def test_hours_are_summed_newest_first_and_through_is_the_end_of_the_newest() -> None:
    window = advance(None, "inv-1", SINCE, [hour(2), hour(1), hour(0, byoc_vcpu=7)])
    assert window.through == SINCE + 3 * HOUR
    assert window.paas.total == 3 * 110
    assert dict(window.paas.dimensions)["cpu"] == 300
    assert dict(window.paas.dimensions)["memory"] == 30
    assert window.byoc.total == 7
    assert window.total == 337


def test_the_next_poll_adds_only_new_hours() -> None:
    first = advance(None, "inv-1", SINCE, [hour(1), hour(0)])
    # the API answered from startTime = first.through, but repeats an old hour too
    second = advance(first, "inv-1", SINCE, [hour(3, cpu=1), hour(2, cpu=1), hour(1)])
    assert second.through == SINCE + 4 * HOUR
    assert second.paas.total == 2 * 110 + 2 * 11
    assert first.paas.total == 220  # the old window is untouched (frozen)


def test_a_repeated_hour_in_one_answer_counts_once() -> None:
    window = advance(None, "inv-1", SINCE, [hour(0), hour(0)])
    assert window.paas.total == 110


def test_hours_before_the_window_are_ignored() -> None:
    window = advance(None, "inv-1", SINCE, [hour(0), hour(-1), hour(-2)])
    assert window.paas.total == 110
    assert window.through == SINCE + HOUR


def test_a_new_invoice_restarts_the_window_at_its_end() -> None:
    old = advance(None, "inv-1", SINCE, [hour(i) for i in range(5)])
    assert old.paas.total == 550
    new_since = SINCE + 4 * HOUR
    restarted = advance(old, "inv-2", new_since, [])
    assert (restarted.since, restarted.through) == (new_since, new_since)
    assert restarted.total == 0
    assert restarted.teams == {}


def test_team_windows_move_on_their_own() -> None:
    first = advance(None, "inv-1", SINCE, [], {"team-a": [hour(0)]})
    assert first.team_start("team-a") == SINCE + HOUR
    assert first.team_start("team-b") == SINCE  # a team seen for the first time starts at since
    second = advance(first, "inv-1", SINCE, [], {"team-a": [hour(1)], "team-b": [hour(1), hour(0)]})
    assert second.teams["team-a"].paas.total == 220
    assert second.teams["team-b"].paas.total == 220
    assert second.teams["team-b"].through == SINCE + 2 * HOUR


def test_missing_dimensions_add_nothing() -> None:
    entry = models.UsageEntry.model_validate(
        {"timestamp": SINCE, "paasUsage": {"price": {"total": 5}}}
    )
    window = advance(None, "inv-1", SINCE, [entry])
    assert window.paas.total == 5
    assert dict(window.paas.dimensions)["cpu"] == 0


def test_sum_plus_none_is_unchanged() -> None:
    zero = Sum.zero((("cpu", "cpu"),))
    assert zero.plus(None, (("cpu", "cpu"),)) is zero


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team-a=500, team-b=1200", {"team-a": 500, "team-b": 1200}),
        (" team-a = 0.5 ,*=300 ", {"team-a": 0.5, "*": 300}),
        ("", {}),
        ("a=1,,b=2,", {"a": 1, "b": 2}),
    ],
)
def test_budgets_parse(text: str, expected: dict[str, float]) -> None:
    assert parse_budgets(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("team-a", "entry 'team-a' is not team=amount"),
        ("=5", "entry '=5' is not team=amount"),
        ("team-a=lots", "entry 'team-a=lots': 'lots' is not a number"),
        ("team-a=-1", "entry 'team-a=-1': the amount must be a non-negative number"),
        ("team-a=nan", "entry 'team-a=nan': the amount must be a non-negative number"),
        ("team-a=inf", "entry 'team-a=inf': the amount must be a non-negative number"),
        ("team-a=1, team-a=2", "team 'team-a' is named twice"),
        ("*=1,*=2", "team '*' is named twice"),
    ],
)
def test_bad_budgets(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        parse_budgets(text)


def test_budget_default_applies_to_the_rest() -> None:
    budgets = {"team-a": 500.0, "*": 300.0}
    assert budget_for(budgets, "team-a") == 500
    assert budget_for(budgets, "team-z") == 300
    assert budget_for({"team-a": 1.0}, "team-z") is None
