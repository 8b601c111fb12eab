"""Window arithmetic of unbilled usage, and budgets parsing. Pure functions, no I/O."""

from __future__ import annotations

from fractions import Fraction

import pytest

from exporter.api.model import Price, UsageEntry
from exporter.settings import View, parse_budgets
from exporter.unbilled import HOUR, Answer, Sum, advance

SINCE = 1_761_955_200.0  # an invoice's period end, on the hour


def hour(index: int, cpu: float = 100, byoc_vcpu: float | None = None) -> UsageEntry:
    paas = Price(cpu + 10, (("cpu", cpu), ("memory", 10)))
    byoc = None if byoc_vcpu is None else Price(byoc_vcpu, (("vcpu", byoc_vcpu),))
    return UsageEntry(SINCE + index * HOUR, paas, byoc)


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


def test_the_next_poll_asks_again_from_three_hours_before_the_end() -> None:
    first = advance(None, "inv-1", SINCE, [hour(i) for i in range(5)])
    assert first.through == SINCE + 5 * HOUR
    assert first.org_start() == SINCE + 2 * HOUR  # 3 hours before the end of hour 4
    young = advance(None, "inv-1", SINCE, [hour(0)])
    assert young.org_start() == SINCE  # fewer than 3 hours: from the window's start


def test_re_read_hours_replace_their_old_figures() -> None:
    """The API corrected hours 2 and 4 and added hour 5: each hour counts once, as last seen."""
    first = advance(None, "inv-1", SINCE, [hour(i) for i in range(5)])
    answer = [hour(5, cpu=1), hour(4, cpu=50), hour(3), hour(2, cpu=0)]
    second = advance(first, "inv-1", SINCE, answer)
    assert second.through == SINCE + 6 * HOUR
    assert second.paas.total == 110 * 3 + 10 + 60 + 11  # hours 0,1,3 | 2 | 4 | 5
    assert first.paas.total == 550  # the old window is untouched (frozen)


def test_hours_older_than_the_lookback_are_settled_for_good() -> None:
    first = advance(None, "inv-1", SINCE, [hour(i) for i in range(5)])
    # hour 1 is settled: a late answer for it (from a misbehaving API) changes nothing
    second = advance(first, "inv-1", SINCE, [hour(1, cpu=999), hour(5)])
    assert second.paas.total == 550 + 110
    assert [at for at, _ in second.paas_hours.recent] == [SINCE + i * HOUR for i in (3, 4, 5)]


def test_the_running_hour_grows_then_settles() -> None:
    """Hour 2 returned a quarter, then half filled, then whole: it ends as the whole hour."""
    window = advance(None, "inv-1", SINCE, [hour(2, cpu=25), hour(1), hour(0)])
    assert window.through == SINCE + 3 * HOUR  # the running hour's end
    window = advance(window, "inv-1", SINCE, [hour(2, cpu=50), hour(1), hour(0)])
    assert window.paas.total == 110 + 110 + 60
    window = advance(window, "inv-1", SINCE, [hour(3, cpu=10), hour(2), hour(1)])
    assert window.paas.total == 110 * 3 + 20
    assert dict(window.paas.dimensions)["cpu"] == 310


def test_sums_are_exact_whatever_the_order_of_polls() -> None:
    """Fractional amounts: 0.1 + 0.2 + ... summed exactly as the decimals the API sent
    (0.1 is 1/10, not the binary float nearest it), rounded once."""
    values = [0.1, 0.2, 0.3, 0.005, 1e-9, 12345.675]
    one_go = advance(None, "inv-1", SINCE, [hour(i, cpu=v) for i, v in enumerate(values)])
    stepwise = None
    for i, v in enumerate(values):
        stepwise = advance(stepwise, "inv-1", SINCE, [hour(i, cpu=v)])
    assert stepwise is not None
    expected = float(sum(Fraction(repr(v)) for v in values))
    assert expected == 12346.280000001
    assert float(dict(one_go.paas.dimensions)["cpu"]) == expected
    assert float(dict(stepwise.paas.dimensions)["cpu"]) == expected


def test_a_fractional_invoice_end_keeps_its_hour_out() -> None:
    """An hour that starts before ``since`` was billed: dropped, even when startTime lets it in."""
    since = SINCE + 0.5
    window = advance(None, "inv-1", since, [hour(1), hour(0)])
    assert window.since == since
    assert window.paas.total == 110  # hour 0 starts half a second before since
    assert window.through == SINCE + 2 * HOUR


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
    assert restarted.team_hours == {}


def test_team_windows_move_on_their_own() -> None:
    first = advance(None, "inv-1", SINCE, [], {"team-a": [hour(i) for i in range(4)]})
    assert first.team_start("team-a") == SINCE + HOUR
    assert first.team_start("team-b") == SINCE  # a team seen for the first time starts at since
    answers = {"team-a": [hour(4), hour(3)], "team-b": [hour(1), hour(0)]}
    second = advance(first, "inv-1", SINCE, [], answers)
    assert second.team_hours["team-a"].sum.total == 550
    assert second.team_hours["team-b"].sum.total == 220
    assert second.team_hours["team-b"].end == SINCE + 2 * HOUR


def test_missing_dimensions_add_nothing() -> None:
    entry = UsageEntry(SINCE, Price(5), None)
    window = advance(None, "inv-1", SINCE, [entry])
    assert window.paas.total == 5
    assert dict(window.paas.dimensions)["cpu"] == 0


def test_a_missing_price_is_an_hour_of_zero() -> None:
    assert Sum.of(None, ("cpu",)) == Sum.zero(("cpu",))


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
    assert View(budgets=budgets).budget_for("team-a") == 500
    assert View(budgets=budgets).budget_for("team-z") == 300
    assert View(budgets={"team-a": 1.0}).budget_for("team-z") is None


def test_the_apis_own_sum_replaces_everything_before_it() -> None:
    """granularity=total: each poll's one entry is the whole window, up to its end."""
    end = SINCE + 5 * HOUR
    whole = advance(None, "inv-1", SINCE, Answer((hour(0, cpu=40),), end))
    assert (whole.through, whole.paas.total) == (end, 50)
    again = advance(whole, "inv-1", SINCE, Answer((hour(0, cpu=90),), end + HOUR))
    assert (again.through, again.paas.total) == (end + HOUR, 100)  # replaced, not added
    empty = advance(again, "inv-1", SINCE, Answer((), end + 2 * HOUR))
    assert (empty.through, empty.total) == (end + 2 * HOUR, 0)


def test_hours_after_a_whole_sum_start_again_from_since() -> None:
    """A server that answered hours to a total request (or refused it): the hours are
    asked from the window's start, and the whole sum they follow is dropped."""
    whole = advance(None, "inv-1", SINCE, Answer((hour(0, cpu=990),), SINCE + 3 * HOUR))
    assert whole.org_start() == SINCE  # never from the lookback of a sum it did not keep apart
    hourly = advance(whole, "inv-1", SINCE, [hour(1), hour(0)])
    assert (hourly.paas.total, hourly.through) == (220, SINCE + 2 * HOUR)
    assert hourly.org_start() == SINCE


def test_a_refusal_of_totals_is_kept_a_day_even_across_invoices() -> None:
    window = advance(None, "inv-1", SINCE, []).refused(SINCE + 10)
    assert not window.totals_due(SINCE + 10 + 86399)
    assert window.totals_due(SINCE + 10 + 86400)
    restarted = advance(window, "inv-2", SINCE + 5 * HOUR, [])
    assert restarted.totals_refused_at == SINCE + 10
