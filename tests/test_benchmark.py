"""The benchmark runs and its table parses: ``python -m benchmarks.run --quick``.

Only that it works is checked here, never how fast anything is (the figures are the
benchmark's, in BENCHMARKS.md). The quick run uses a small organisation and one-second
wrk runs, and takes about 20 seconds. Needs wrk, nginx (nginx-light) and promtool
(prometheus): scripts/test installs them; a missing one fails the test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.config import Organisation
from benchmarks.polls import ideal_poll_seconds, minimum_requests, steady_requests
from benchmarks.wrk import parse_wrk

pytestmark = pytest.mark.benchmark
ROOT = Path(__file__).resolve().parent.parent
ROWS = (
    "poll_wall",
    "poll_wall_pinned",
    "poll_requests",
    "poll_requests_pinned",
    "cost_first_3x8",
    "cost_reread_3x8",
    "cost_steady_3x8",
    "cost_cpu_3x8",
    "cost_polls_3x8",
    "reserve_first_read",
    "reserve_waited",
    "reserve_lowest",
    "reserve_429",
    "catchup_current_project",
    "catchup_time_current_project",
    "catchup_steady_current_project",
    "catchup_current_resource",
    "catchup_time_current_resource",
    "catchup_steady_current_resource",
    "catchup_legacy_project",
    "catchup_time_legacy_project",
    "catchup_steady_legacy_project",
    "catchup_legacy_resource",
    "catchup_time_legacy_resource",
    "catchup_steady_legacy_resource",
    "catchup_limits",
    "scrape_gzip",
    "scrape_identity",
    "scrape_p99_gzip",
    "scrape_p99_identity",
    "reference_gzip",
    "reference_identity",
    "cpu_per_poll",
    "cpu_steady",
    "cpu_read",
    "cpu_render",
    "peak_rss",
    "promtool",
)
NUMBER = re.compile(r"^[\d,]+(\.\d+)?x?$")


def leading_number(cell: str) -> float:
    """``1,234.5 nginx`` -> 1234.5; fails when the cell does not start with a number."""
    first = cell.split()[0] if cell.split() else ""
    assert NUMBER.match(first), f"not a number: {cell!r}"
    return float(first.rstrip("x").replace(",", ""))


@pytest.fixture(scope="module")
def quick_run() -> str:
    for tool in ("wrk", "nginx", "promtool"):
        found = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
        assert found, f"{tool} is missing: run scripts/test, which installs it"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def table(output: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        if not line.startswith("| ") or line.startswith("| key "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 7, line
        rows[cells[0]] = cells[1:]
    return rows


def test_quick_benchmark_prints_every_row_with_numbers(quick_run: str) -> None:
    rows = table(quick_run)
    assert list(rows) == list(ROWS)
    for key, (_what, ours, reference, ratio, _target, result) in rows.items():
        assert result in ("met", "MISSED", "info"), (key, result)
        if key == "promtool":
            assert ours == "valid", "promtool check metrics failed on the exposition"
            continue
        assert leading_number(ours) >= 0, key
        if reference != "-":
            assert leading_number(reference) >= 0, key
        if ratio != "-":
            assert leading_number(ratio) >= 0, key


def test_quick_benchmark_says_how_and_where(quick_run: str) -> None:
    assert "- command: `python -m benchmarks.run --quick`" in quick_run
    assert re.search(r"^- date: \d{4}-\d\d-\d\d \d\d:\d\d UTC", quick_run, re.M)
    assert re.search(r"^- machine: .+, \d+ CPUs, ", quick_run, re.M)
    assert "nginx serves the same bytes: yes" in quick_run
    assert re.search(r"prometheus_client server: same [\d,]+ series and values", quick_run)
    rows = table(quick_run)
    # requests per poll are counted, not timed: the quick run must meet the minimum
    # (a read: the list, the invoice, 4 teams, 12 projects, and the credit balance)
    assert rows["poll_requests"][1] == "19"
    assert rows["poll_requests"][2] == "19 minimum"
    assert rows["poll_requests_pinned"][1] == "17"
    # 3 teams x 8 projects, the usage on (4 requests: the API's sums) and the credit: by
    # project first (3 + 3 + 24 + 4), then by type (3 + 3 x (1 + 7) + 4); steady: the list,
    # the usage, the credit
    assert rows["cost_first_3x8"][1:3] == ["34", "34 minimum"]
    assert rows["cost_reread_3x8"][1:3] == ["31", "31 minimum"]
    assert rows["cost_steady_3x8"][1] == "6"
    assert rows["cost_steady_3x8"][5] == "met"
    # a first read of 34 requests, 20 a window above the reserve: it waited, never refused
    assert rows["reserve_lowest"][2] == "100 reserve"
    assert 100 <= leading_number(rows["reserve_lowest"][1]) <= 110
    assert rows["reserve_lowest"][5] == "met"
    assert rows["reserve_429"][1] == "0"
    assert leading_number(rows["reserve_waited"][1]) > 0


def test_ideal_and_minimum_follow_the_issue() -> None:
    # 20 teams x 10 projects: list, invoice, then 220 calls packed 8 at a time (28 rounds)
    org = Organisation(teams=20, projects=10, latency=0.05)  # 7 resource types
    # first poll: by project, 20 + 200 calls after list and invoice, 8 at a time: 28 rounds
    assert ideal_poll_seconds(org, 8, pinned=False, first=True) == pytest.approx(1.5)
    # ... and the credit balance, when the list is read
    assert minimum_requests(org, pinned=False, first=True) == 223
    # later: by type (7 < 10), 20 x (1 + 7) = 160 calls: 20 rounds
    assert ideal_poll_seconds(org, 8, pinned=False) == pytest.approx(1.1)
    assert ideal_poll_seconds(org, 8, pinned=True) == pytest.approx(1.05)
    assert minimum_requests(org, pinned=False) == 163
    assert minimum_requests(org, pinned=True) == 161
    # a type answer of 200 resources takes 2 pages: 10 x (1 + 14) + 2 (+ the credit)
    assert minimum_requests(Organisation(10, 50, resources=4), pinned=False) == 153
    assert minimum_requests(Organisation(10, 50), pinned=False) == 83
    assert minimum_requests(Organisation(30, 50), pinned=False, first=True) == 1533
    # a steady poll of 10 x 50, the usage on: the list, 1 + 10 usage sums, the credit
    assert steady_requests(Organisation(10, 50)) == 13


def test_wrk_output_is_read() -> None:
    output = """Running 1s test @ http://127.0.0.1:1/metrics
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   627.01us    1.20ms  16.00ms   95.12%
    Req/Sec     4.10k   200.00     4.50k    70.00%
  Latency Distribution
     50%  302.00us
     75%  500.00us
     90%    1.00ms
     99%    5.70ms
  4100 requests in 1.00s, 1.70GB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:   4070.64
Transfer/sec:      1.69GB
"""
    run = parse_wrk(output)
    assert run.requests_per_second == pytest.approx(4070.64)
    assert run.p50_ms == pytest.approx(0.302)
    assert run.p99_ms == pytest.approx(5.7)
    assert run.requests == 4100
    assert run.errors == 6


def test_quick_benchmark_catches_this_month_up_within_the_limits(quick_run: str) -> None:
    """Counted in virtual time, so exact: 3 x 8, 48 hours after the invoice's end."""
    rows = table(quick_run)
    assert rows["catchup_limits"][5] == "met"  # on schedule, each hour once, no 429, reserve
    for case in ("current_project", "current_resource", "legacy_project", "legacy_resource"):
        assert rows[f"catchup_{case}"][2] in ("45 hours", "46 hours"), case
    # the current contract's sums by project: the newest hour (1 + 3), then 3 teams and
    # 24 projects, against 45 hours of 1 + 3 requests each
    assert rows["catchup_current_project"][1] == "31"
    assert rows["catchup_legacy_project"][1] == "180"
    assert rows["catchup_steady_current_project"][1] == "4"
