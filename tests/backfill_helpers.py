"""What the backfill tests share (tests/test_backfill_*.py): the organisation's "now",
running ``northflank-exporter backfill`` against a simulator, turning its file into blocks
with ``promtool``, and the invoices' ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from exporter.simulator import (
    Organisation,
    Simulator,
)
from tests.harness import TOKEN, api_env
from tests.promserver import require_binary

DAY = 86400
JOB = "northflank"
MAX_BLOCK = "--max-block-duration=1458h"  # a few passes over the file, not one per 2 hours


def org_now() -> float:
    """Ten days ago: the newest invoice ends at least ten days before the test runs."""
    return time.time() - 10 * DAY


def run_backfill(
    sim: Simulator, *args: str, timeout: float = 300, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NORTHFLANK_")}
    env.update(api_env(sim.url, TOKEN, **settings))
    return subprocess.run(
        [sys.executable, "-m", "exporter", "backfill", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def promtool_blocks(openmetrics: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    return subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            MAX_BLOCK,
            *(str(openmetrics), str(data_dir)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ends(org: Organisation) -> list[float]:
    return sorted(invoice.period_end for invoice in org.invoices)


def invoice_at(org: Organisation, end: float) -> str:
    return next(invoice.id for invoice in org.invoices if invoice.period_end == end)
