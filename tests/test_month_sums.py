"""This month's sums (exporter/month.py) and their state file (exporter/state.py), in
process: which hours are due, each added once and exactly, a span at once, the tree the
families are made from; the file written whole and read back, or ignored with one line.
"""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import pytest

from exporter import month as mo
from exporter import state
from exporter.api import model
from exporter.api.model import Price

H = mo.HOUR
SINCE = 1_796_083_200.0  # a whole hour


def team(team_id: str, *projects: model.Project) -> model.Team:
    return model.Team(team_id, team_id.title(), Price(0.0), projects)


def project(
    pid: str, total: float, cpu: float | None = None, *kinds: model.ResourceType
) -> model.Project:
    dims = (("cpu", cpu),) if cpu is not None else ()
    return model.Project(pid, pid.upper(), Price(total, dims), kinds or None)


def kind(name: str, *resources: tuple[str, float]) -> model.ResourceType:
    found = tuple(model.Resource(rid, f"{rid} name", Price(v)) for rid, v in resources)
    return model.ResourceType(name, Price(sum(v for _, v in resources)), found)


def window(depth: str = "project", invoice: str = "inv-1", contract: str = "current") -> mo.Month:
    return mo.start(invoice, contract, since=SINCE, depth=depth, teams=frozenset())  # type: ignore[arg-type]


def test_an_hour_is_due_once_it_ended_three_hours_ago() -> None:
    m = window()
    assert mo.due(m, SINCE + 3 * H) == []  # the first hour ended 2 h ago
    assert mo.due(m, SINCE + 4 * H - 1) == []
    assert mo.due(m, SINCE + 4 * H) == [SINCE]
    assert mo.due(m, SINCE + 6.5 * H) == [SINCE, SINCE + H, SINCE + 2 * H]
    later = mo.add_hour(m, SINCE, [], "usd")
    assert mo.due(later, SINCE + 6.5 * H) == [SINCE + H, SINCE + 2 * H]


def test_a_window_that_starts_within_an_hour_begins_at_the_next_whole_hour() -> None:
    m = mo.start("inv", "current", since=SINCE + 600, depth="project", teams=frozenset())
    assert mo.first_hour(m) == SINCE + H
    assert mo.due(m, SINCE + 5 * H) == [SINCE + H]


def test_each_hour_is_added_once_in_order() -> None:
    m = mo.add_hour(window(), SINCE, [team("t1", project("web", 1.0))], "usd")
    with pytest.raises(ValueError, match="not the next"):
        mo.add_hour(m, SINCE, [team("t1", project("web", 1.0))], "usd")  # again
    with pytest.raises(ValueError, match="not the next"):
        mo.add_hour(m, SINCE + 2 * H, [], "usd")  # a gap
    assert (m.through, m.hours) == (SINCE + H, 1)


def test_sums_are_exact_decimal_additions() -> None:
    m = window()
    for i, amount in enumerate((0.1, 0.2, 0.3)):  # 0.6 exactly, not 0.6000000000000001
        m = mo.add_hour(m, SINCE + i * H, [team("t1", project("web", amount, 0.1))], "usd")
    entry = m.sums[("t1", "web")]
    assert entry.total == Fraction(6, 10)
    assert dict(entry.dimensions) == {"cpu": Fraction(3, 10)}
    [t] = mo.teams(m)
    assert t.projects is not None
    assert t.projects[0].price == Price(0.6, (("cpu", 0.3),))


def test_at_depth_resource_types_and_resources_are_summed_and_named() -> None:
    m = window("resource")
    web = project("web", 3.0, None, kind("service", ("s1", 1.0), ("s2", 2.0)))
    m = mo.add_hour(m, SINCE, [team("t1", web)], "usd")
    renamed = project("web", 1.5, None, kind("service", ("s1", 1.5)))
    m = mo.add_hour(m, SINCE + H, [team("t1", renamed)], "usd")
    assert m.sums[("t1", "web", "service")].total == Fraction(9, 2)
    assert m.sums[("t1", "web", "service", "s1")].total == Fraction(5, 2)
    [t] = mo.teams(m)
    [p] = t.projects or ()
    [k] = p.resource_types or ()
    assert (p.price.total, k.resource_type, k.price.total) == (4.5, "service", 4.5)
    assert [(r.id, r.name, r.price.total) for r in k.resources] == [
        ("s1", "s1 name", 2.5),
        ("s2", "s2 name", 2.0),
    ]


def test_at_depth_project_no_deeper_sums_are_kept() -> None:
    web = project("web", 3.0, None, kind("service", ("s1", 3.0)))
    m = mo.add_hour(window("project"), SINCE, [team("t1", web)], "usd")
    assert list(m.sums) == [("t1", "web")]


def test_a_span_adds_its_whole_hours_at_once() -> None:
    m = mo.add_span(window(), SINCE + 5 * H, [team("t1", project("web", 12.34))], "usd")
    assert (m.through, m.hours, m.sums[("t1", "web")].total) == (
        SINCE + 5 * H,
        5,
        Fraction("12.34"),
    )
    with pytest.raises(ValueError, match="whole hour"):
        mo.add_span(m, SINCE + 5.5 * H, [], "usd")
    with pytest.raises(ValueError, match="whole hour"):
        mo.add_span(m, SINCE + 5 * H, [], "usd")  # no hour at all


# --------------------------------------------------------------------------- the state file


def summed() -> mo.Month:
    m = window("resource")
    web = project("web", 0.1, 0.1, kind("service", ("s1", 0.1)))
    for i in range(3):
        m = mo.add_hour(m, SINCE + i * H, [team("t1", web)], "usd")
    return m


def test_the_state_file_gives_back_the_same_sums(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "month.json"
    m = summed()
    state.save(path, m)
    assert [p.name for p in tmp_path.iterdir()] == ["month.json"]  # no temporary file left
    document = json.loads(path.read_text())
    assert (document["format"], document["version"], document["through"]) == (
        state.FORMAT,
        state.VERSION,
        SINCE + 3 * H,
    )
    caplog.set_level(logging.INFO, "exporter.state")
    back = state.load(path, window("resource"))
    assert back == m
    assert back is not None
    assert back.sums[("t1", "web")].total == Fraction(3, 10)
    assert "resumed" in caplog.text


def test_saving_again_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "month.json"
    state.save(path, window("resource"))
    state.save(path, summed())
    assert state.load(path, window("resource")) == summed()


def corrupt(path: Path) -> None:
    path.write_text('{"format": "northflank-exporter month", "version": 1, "sums": [')


def foreign(path: Path) -> None:
    path.write_text(json.dumps({"hello": "world"}))


def old_version(path: Path) -> None:
    state.save(path, summed())
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "version": 0}))


def bad_sum(path: Path) -> None:
    state.save(path, summed())
    document = json.loads(path.read_text())
    document["sums"][0][2] = "1/0"
    path.write_text(json.dumps(document))


def other_invoice(path: Path) -> None:
    state.save(path, mo.start("inv-0", "current", since=SINCE, depth="resource", teams=frozenset()))


def other_contract(path: Path) -> None:
    state.save(path, window("resource", contract="legacy"))


def other_depth(path: Path) -> None:
    state.save(path, window("project"))


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (corrupt, "not a state file of this exporter"),
        (foreign, "not a state file of this exporter"),
        (old_version, "version 0, not 1"),
        (bad_sum, "not a state file of this exporter"),
        (other_invoice, "it is for inv-0"),
        (other_contract, "(legacy, depth resource)"),
        (other_depth, "depth project"),
    ],
)
def test_a_state_file_that_does_not_fit_is_ignored_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, make: object, why: str
) -> None:
    path = tmp_path / "month.json"
    make(path)  # type: ignore[operator]
    caplog.set_level(logging.INFO, "exporter.state")
    assert state.load(path, window("resource")) is None
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "ignored" in record.getMessage()
    assert why in record.getMessage()


def test_a_missing_state_file_is_said_once_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "exporter.state")
    assert state.load(tmp_path / "none.json", window()) is None
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert "starts afresh" in record.getMessage()
