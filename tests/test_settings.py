"""Settings: each bad input stops the program with exit 2 and one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.settings import SettingsError, load

TOKEN_ENV = {"NORTHFLANK_API_TOKEN": "tok-123"}


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The exporter's command line as a process: its tests are marked e2e."""
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(__import__("os").environ):
        if name.startswith("NORTHFLANK_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {}, "NORTHFLANK_API_TOKEN: required (or set NORTHFLANK_API_TOKEN_FILE)"),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_POLL_INTERVAL_SECONDS": "soon"},
            "NORTHFLANK_POLL_INTERVAL_SECONDS: input should be a valid number, "
            "unable to parse string as a number (got 'soon')",
        ),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_POLL_INTERVAL_SECONDS": "0.5"},
            "NORTHFLANK_POLL_INTERVAL_SECONDS: input should be greater than or equal to 1 "
            "(got '0.5')",
        ),
        (
            ["--poll-interval-seconds", "-3"],
            TOKEN_ENV,
            "--poll-interval-seconds: input should be greater than or equal to 1 (got '-3')",
        ),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_DEPTH": "service"},
            "NORTHFLANK_DEPTH: input should be 'team', 'project' or 'resource' (got 'service')",
        ),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_API_URL": "api.northflank.com"},
            "NORTHFLANK_API_URL: must be an http:// or https:// URL with a host "
            "(got 'api.northflank.com')",
        ),
        (
            [],
            {"NORTHFLANK_API_TOKEN_FILE": "/nonexistent/token"},
            "NORTHFLANK_API_TOKEN_FILE: cannot read /nonexistent/token: No such file or directory",
        ),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_MAX_CONCURRENCY": "0"},
            "NORTHFLANK_MAX_CONCURRENCY: input should be greater than or equal to 1 (got '0')",
        ),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_REQUEST_BUDGET_PER_HOUR": "lots"},
            "NORTHFLANK_REQUEST_BUDGET_PER_HOUR: input should be a valid integer, "
            "unable to parse string as an integer (got 'lots')",
        ),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_LISTEN_ADDRESS": "9721"},
            "NORTHFLANK_LISTEN_ADDRESS: must be host:port, e.g. 0.0.0.0:9721 (got '9721')",
        ),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_AMOUNT_UNIT": "pennies"},
            "NORTHFLANK_AMOUNT_UNIT: input should be 'auto', 'cents' or 'major' (got 'pennies')",
        ),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_API_CONTRACT": "v2"},
            "NORTHFLANK_API_CONTRACT: input should be 'auto', 'current' or 'legacy' (got 'v2')",
        ),
        (
            ["--api-contract", "newest"],
            TOKEN_ENV,
            "--api-contract: input should be 'auto', 'current' or 'legacy' (got 'newest')",
        ),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_LOG_FORMAT": "xml"},
            "NORTHFLANK_LOG_FORMAT: input should be 'text' or 'json' (got 'xml')",
        ),
        (["--no-such-flag"], TOKEN_ENV, "unrecognized arguments: --no-such-flag"),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_WEB_CONFIG_FILE": "/etc/nonexistent-web.yml"},
            "NORTHFLANK_WEB_CONFIG_FILE: cannot read /etc/nonexistent-web.yml: "
            "No such file or directory",
        ),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_BUDGETS": "team-a=500, team-b=lots"},
            "NORTHFLANK_BUDGETS: entry 'team-b=lots': 'lots' is not a number "
            "(got 'team-a=500, team-b=lots')",
        ),
        (
            ["--budgets", "team-a=1,team-a=2"],
            TOKEN_ENV,
            "--budgets: team 'team-a' is named twice (got 'team-a=1,team-a=2')",
        ),
        (
            [],
            {**TOKEN_ENV, "NORTHFLANK_UNBILLED": "maybe"},
            "NORTHFLANK_UNBILLED: input should be a valid boolean, unable to interpret input "
            "(got 'maybe')",
        ),
    ],
    ids=[
        "missing-token",
        "interval-not-a-number",
        "interval-below-1",
        "interval-flag",
        "bad-depth",
        "bad-url",
        "token-file-missing",
        "concurrency-zero",
        "budget-not-integer",
        "listen-no-host",
        "amount-unit",
        "api-contract",
        "api-contract-flag",
        "log-format",
        "unknown-flag",
        "web-config-missing",
        "budget-not-a-number",
        "budget-twice",
        "unbilled-not-boolean",
    ],
)
@pytest.mark.e2e
def test_bad_setting_exits_2_with_one_line(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = run_cli(args, env)
    assert result.returncode == 2
    assert result.stderr == f"northflank-exporter: {message}\n"
    assert result.stdout == ""


@pytest.mark.e2e
def test_empty_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("\n")
    result = run_cli([], {"NORTHFLANK_API_TOKEN_FILE": str(path)})
    assert result.returncode == 2
    assert result.stderr == f"northflank-exporter: NORTHFLANK_API_TOKEN_FILE: {path} is empty\n"


def test_blank_token_is_refused_without_echoing_it(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NORTHFLANK_API_TOKEN", " \t ")
    with pytest.raises(SettingsError) as caught:
        load([])
    assert str(caught.value) == "NORTHFLANK_API_TOKEN: must not be empty"


def test_a_bad_setting_beside_the_token_does_not_echo_it(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NORTHFLANK_API_TOKEN", "very-secret-value")
    clean_env.setenv("NORTHFLANK_MAX_CONCURRENCY", "x")
    with pytest.raises(SettingsError) as caught:
        load([])
    assert str(caught.value).startswith("NORTHFLANK_MAX_CONCURRENCY: ")
    assert "very-secret-value" not in str(caught.value)


def test_token_file_is_stripped(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text("  tok-from-file \n")
    clean_env.setenv("NORTHFLANK_API_TOKEN_FILE", str(path))
    assert load([]).token() == "tok-from-file"


def test_token_variable_beats_file(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text("from-file")
    clean_env.setenv("NORTHFLANK_API_TOKEN_FILE", str(path))
    clean_env.setenv("NORTHFLANK_API_TOKEN", "from-env")
    assert load([]).token() == "from-env"


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NORTHFLANK_API_TOKEN", "t")
    settings = load([])
    assert settings.api_url == "https://api.northflank.com"
    assert settings.depth == "resource"
    assert settings.poll_interval_seconds == 900
    assert settings.request_budget_per_hour == 900
    assert settings.max_concurrency == 8
    assert settings.request_timeout_seconds == 10
    assert settings.staleness_seconds == 3600  # 3 x 900 < 3600
    assert settings.amount_unit == "auto"
    assert settings.api_contract == "auto"
    assert (settings.host, settings.port) == ("0.0.0.0", 9721)
    assert settings.teams == ()
    assert settings.invoice_id is None
    assert settings.unbilled is True
    assert settings.budgets == {}


def test_flag_beats_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NORTHFLANK_API_TOKEN", "t")
    clean_env.setenv("NORTHFLANK_DEPTH", "team")
    clean_env.setenv("NORTHFLANK_POLL_INTERVAL_SECONDS", "60")
    settings = load(["--depth", "project"])
    assert settings.depth == "project"
    assert settings.poll_interval_seconds == 60


def test_staleness_default_follows_the_interval(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NORTHFLANK_API_TOKEN", "t")
    assert load(["--poll-interval-seconds", "1800"]).staleness_seconds == 5400
    assert load(["--max-staleness-seconds", "30"]).staleness_seconds == 30  # taken as given


def test_teams_are_split_on_commas(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NORTHFLANK_API_TOKEN", "t")
    clean_env.setenv("NORTHFLANK_TEAMS", " team-a, team-b ,,team-c ")
    assert load([]).teams == ("team-a", "team-b", "team-c")


def test_ipv6_listen_address(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NORTHFLANK_API_TOKEN", "t")
    settings = load(["--listen-address", "[::1]:9000"])
    assert (settings.host, settings.port) == ("::1", 9000)


def test_trailing_slash_is_dropped_from_url(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NORTHFLANK_API_TOKEN", "t")
    assert load(["--api-url", "http://127.0.0.1:8000/"]).api_url == "http://127.0.0.1:8000"


@pytest.mark.e2e
def test_help_lists_every_setting_with_its_variable() -> None:
    result = run_cli(["--help"], {})
    assert result.returncode == 0
    for name in (
        "NORTHFLANK_API_TOKEN_FILE",
        "NORTHFLANK_MAX_STALENESS_SECONDS",
        "--once",
        "--demo",
        "--request-budget-per-hour",
    ):
        assert name in result.stdout


@pytest.mark.e2e
def test_version() -> None:
    result = run_cli(["--version"], {})
    assert result.returncode == 0
    assert result.stdout.startswith("northflank-exporter ")
