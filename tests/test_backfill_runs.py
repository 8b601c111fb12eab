"""``northflank-exporter backfill`` as a process against the simulator: the API failing
halfway (exit 1, a file promtool still accepts), progress shown on a terminal only, and
the request budget's wait said in the log."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from exporter.simulator import (
    Simulator,
    generate_organisation,
)
from tests.backfill_helpers import (
    ends,
    invoice_at,
    org_now,
    promtool_blocks,
    run_backfill,
)
from tests.harness import TOKEN, api_env, wait_for

# --------------------------------------------------------------------------- a fault halfway


@pytest.mark.e2e
@pytest.mark.tools
def test_api_failing_halfway_exits_1_with_a_valid_file(tmp_path: Path) -> None:
    org = generate_organisation(teams=2, projects_per_team=2, invoices=4, now=org_now())
    order = ends(org)
    broken = invoice_at(org, order[2])
    with Simulator(org, token=TOKEN, usage_history=True) as sim:
        sim.faults.fail(503, count=1000, match=lambda path, query: path.endswith("/" + broken))
        file = tmp_path / "history.om"
        result = run_backfill(sim, "--since", str(order[0]), "--output", str(file))
    assert result.returncode == 1, result.stderr
    assert "the API failed" in result.stderr
    assert "wrote the 2 whole invoices read" in result.stderr
    text = file.read_text(encoding="utf-8")
    assert text.endswith("# EOF\n")
    written = set(re.findall(r'invoice_id="([^"]+)"', text))
    assert written == {invoice_at(org, order[0]), invoice_at(org, order[1])}
    stamps = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[0] != "#"]
    assert max(stamps) < order[2]  # the second span stops where the broken invoice starts
    blocks = promtool_blocks(file, tmp_path / "data")
    assert blocks.returncode == 0, blocks.stdout + blocks.stderr


@pytest.mark.e2e
def test_progress_on_a_terminal_only(tmp_path: Path) -> None:
    org = generate_organisation(teams=1, projects_per_team=1, invoices=2, now=org_now())
    with Simulator(org, token=TOKEN, usage_history=True) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NORTHFLANK_")}
        env.update(api_env(sim.url, TOKEN))
        args = [sys.executable, "-m", "exporter", "backfill", "--since", str(ends(org)[0])]
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        process = subprocess.Popen(
            [*args, "--output", str(tmp_path / "a.om")], env=env, stderr=follower
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        assert process.wait(60) == 0
        os.close(leader)
        plain = run_backfill(sim, "--since", str(ends(org)[0]), "--output", str(tmp_path / "b.om"))
    shown = seen.decode(errors="replace")
    assert "reading" in shown
    assert "writing" in shown
    assert "100%" in shown
    assert plain.returncode == 0
    assert "reading" not in plain.stderr
    assert "%|" not in plain.stderr


@pytest.mark.e2e
def test_backfill_waits_for_the_request_budget_and_says_so(tmp_path: Path) -> None:
    """With a budget of 3 requests an hour, the fourth request waits: the log says so
    and nothing more is sent (the test stops it there)."""
    org = generate_organisation(teams=2, projects_per_team=1, invoices=2, now=org_now())
    with Simulator(org, token=TOKEN, usage_history=True) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NORTHFLANK_")}
        env.update(api_env(sim.url, TOKEN, request_budget_per_hour="3"))
        args = ["--since", str(ends(org)[0]), "--output", str(tmp_path / "a.om")]
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "backfill", *args],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            assert "for the rate-limit window: 3 requests sent in this window, the budget " in line
            assert "of 3 (NORTHFLANK_REQUEST_BUDGET_PER_HOUR)" in line
            # the list, the invoice, one of its two teams (on its way as the line is said)
            sent = wait_for(lambda: len(sim.requests) == 3 and 3)
            time.sleep(0.5)
            assert process.poll() is None  # still waiting
            assert len(sim.requests) == sent
        finally:
            process.terminate()
            process.wait(10)
    assert not (tmp_path / "a.om").exists()  # nothing half-written under the name


# --------------------------------------------------------------------------- both contracts


@pytest.mark.e2e
def test_both_contracts_backfill_the_same_file(tmp_path: Path) -> None:
    """The same organisation answered in the current contract (major units, ``paas``, the
    usage list's hours) and pinned to the legacy one (cents, ``paasUsage``): one file, but
    for the invoices' status, which only the current contract has."""
    now = org_now()
    org = generate_organisation(
        teams=2, projects_per_team=2, invoices=3, now=now, fractional_cents=True
    )
    since, until = ends(org)[0], ends(org)[-1] + 5 * 3600
    files = {}
    for contract in ("current", "legacy-pinned"):
        with Simulator(org, token=TOKEN, usage_history=True, contract=contract) as sim:
            file = tmp_path / f"{contract}.om"
            result = run_backfill(
                sim, "--since", str(since), "--until", str(until), "--output", str(file)
            )
            assert result.returncode == 0, result.stderr
            assert not [
                r
                for r in sim.requests
                if "removeLegacyFields" not in r.query and "billing" in r.path
            ]
        files[contract] = file.read_text(encoding="utf-8").splitlines()
    status = "northflank_invoice_status"
    current = [line for line in files["current"] if status not in line]
    assert current == files["legacy-pinned"]
    assert [line for line in files["current"] if line.startswith(status + "{")]
    assert len(current) > 1000
