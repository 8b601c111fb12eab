"""What a benchmark run measures: the organisations, the run lengths, the tools.

An :class:`Organisation` is what the simulator serves (``python -m exporter.simulator
--teams --projects --resources --latency``); a :class:`Config` names the two the
benchmark uses (a small one for polls, a big one for scrapes, CPU and memory) and how
long each measure runs. :data:`FULL` is the benchmark, :data:`QUICK` shows that it works.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TOOLS = {"wrk": "wrk", "nginx": "nginx-light", "promtool": "prometheus"}  # binary: package
RESOURCE_TYPES = 7  # the simulator's --resources is per resource type


class BenchmarkError(Exception):
    """The benchmark could not run: a tool is missing or a process failed."""


def require(tool: str) -> str:
    """The path of one of :data:`TOOLS`; :class:`BenchmarkError` when it is missing."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        raise BenchmarkError(
            f"{tool} is missing: apt-get install {TOOLS[tool]} (or run benchmarks/run)"
        )
    return path


@dataclass(frozen=True)
class Organisation:
    """A simulated organisation: teams x projects (per team) x resources (per type)."""

    teams: int
    projects: int  # per team
    resources: int = 1  # per resource type (7 types)
    latency: float = 0.0  # seconds per simulated API request

    @property
    def all_projects(self) -> int:
        return self.teams * self.projects

    def shape(self) -> str:
        """``20 teams x 10 projects``, as the table's measures say it."""
        return f"{self.teams} teams x {self.projects} projects"


@dataclass(frozen=True)
class Config:
    name: str
    # polls
    poll_org: Organisation
    concurrency: int
    polls: int  # measured, after one warm-up poll
    # scrapes, CPU and memory
    big_org: Organisation
    cpu_polls: int
    cpu_interval: float
    wrk_seconds: float
    wrk_rounds: int
    wrk_connections: int
    reference_seconds: float  # wrk against the per-scrape prometheus_client server
    # requests a poll, first and steady
    cost_orgs: tuple[Organisation, ...] = ()
    steady_polls: int = 3  # after the first read
    # a first read larger than the API's window leaves: its organisation, the window (s)
    first_read_org: Organisation = Organisation(teams=3, projects=8)
    first_read_limit: int = 1000  # the API's requests a window
    first_read_window: float = 5.0
    # this month's breakdown caught up (benchmarks/catchup.py): organisation, window (h)
    catchup_org: Organisation = Organisation(teams=3, projects=8)
    catchup_hours: float = 48.0


FULL = Config(
    name="full",
    poll_org=Organisation(teams=20, projects=10, latency=0.05),
    concurrency=8,
    polls=5,
    big_org=Organisation(teams=10, projects=50, resources=4),
    cpu_polls=5,
    cpu_interval=2.0,
    wrk_seconds=10.0,
    wrk_rounds=3,
    wrk_connections=4,
    reference_seconds=10.0,
    cost_orgs=(
        Organisation(teams=10, projects=50),
        Organisation(teams=10, projects=50, resources=4),
        Organisation(teams=30, projects=50),
    ),
    steady_polls=5,
    first_read_org=Organisation(teams=30, projects=50),
    first_read_window=30.0,
    catchup_org=Organisation(teams=10, projects=50),
    catchup_hours=360.0,
)
QUICK = Config(
    name="quick",
    poll_org=Organisation(teams=4, projects=3, latency=0.02),
    concurrency=8,
    polls=2,
    big_org=Organisation(teams=2, projects=3, resources=1),
    cpu_polls=2,
    cpu_interval=1.0,
    wrk_seconds=1.0,
    wrk_rounds=1,
    wrk_connections=4,
    reference_seconds=1.0,
    cost_orgs=(Organisation(teams=3, projects=8),),
    steady_polls=2,
    first_read_org=Organisation(teams=3, projects=8),
    first_read_limit=120,  # 20 a window above the reserve: the read waits once
    first_read_window=2.0,
)
