"""Settings: one pydantic-settings class, fed by the environment and by flags.

Every field is an environment variable ``NORTHFLANK_<NAME>`` and a flag ``--<name-in-kebab>``;
a flag beats the environment. A missing or malformed setting raises :class:`SettingsError`,
whose message is one line naming the variable (or the flag, when the bad value came from
a flag); ``cli`` prints it and exits 2.

    $ NORTHFLANK_API_TOKEN=... northflank-exporter --poll-interval-seconds 60 --depth project
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from exporter import webconfig
from exporter.api.contract import Contracts
from exporter.webconfig import WebConfig

ENV_PREFIX = "NORTHFLANK_"
Depth = Literal["team", "project", "resource"]
DEPTHS: tuple[Depth, ...] = ("team", "project", "resource")


class SettingsError(Exception):
    """A setting is missing or malformed; ``str()`` is the one line to print."""


@dataclass(frozen=True)
class View:
    """What the figures show: which teams, how deep, with which budgets.

    The one rule for both what a poll drills into (``fetch``) and what the snapshot
    keeps (``snapshot.build``).
    """

    teams: frozenset[str] = frozenset()  # empty: every team the invoice lists
    depth: Depth = "resource"
    budgets: Mapping[str, float] = dataclasses.field(
        default_factory=dict
    )  # team (or "*") -> amount

    def includes(self, team_id: str) -> bool:
        return not self.teams or team_id in self.teams

    def budget_for(self, team_id: str) -> float | None:
        """A team's own budget, else the ``*`` default, else None."""
        return self.budgets.get(team_id, self.budgets.get("*"))


def parse_budgets(text: str) -> dict[str, float]:
    """``team-a=500, team-b=1200, *=300`` -> {"team-a": 500.0, ...}; ValueError naming the entry."""
    budgets: dict[str, float] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        team, sep, amount_text = entry.partition("=")
        team, amount_text = team.strip(), amount_text.strip()
        if not sep or not team:
            raise ValueError(f"entry {entry!r} is not team=amount")
        try:
            amount = float(amount_text)
        except ValueError:
            raise ValueError(f"entry {entry!r}: {amount_text!r} is not a number") from None
        if not amount >= 0 or amount == float("inf"):
            raise ValueError(f"entry {entry!r}: the amount must be a non-negative number")
        if team in budgets:
            raise ValueError(f"team {team!r} is named twice")
        budgets[team] = amount
    return budgets


class Settings(BaseSettings):
    """What the exporter does; see the README's settings table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, case_sensitive=False, extra="forbid", frozen=True
    )

    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    api_url: str = "https://api.northflank.com"
    invoice_id: str | None = None
    teams: Annotated[tuple[str, ...], NoDecode] = ()
    depth: Depth = "resource"
    poll_interval_seconds: float = Field(default=900, ge=1)
    request_budget_per_hour: int = Field(default=900, ge=1)
    ratelimit_reserve: int = Field(default=100, ge=0)
    invoice_refresh_seconds: float = Field(default=86400, ge=0)
    max_concurrency: int = Field(default=8, ge=1, le=256)
    request_timeout_seconds: float = Field(default=10, gt=0)
    max_staleness_seconds: float | None = Field(default=None, gt=0)
    amount_unit: Literal["auto", "cents", "major"] = "auto"
    api_contract: Literal["auto", "current", "legacy"] = "auto"
    listen_address: str = "0.0.0.0:9721"
    web_config_file: Path | None = None
    unbilled: bool = True
    unbilled_depth: Depth | None = None  # None: project, or NORTHFLANK_DEPTH when shallower
    state_file: Path | None = None
    budgets: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("api_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.rstrip("/")

    @field_validator("api_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return SecretStr(value.get_secret_value().strip()) if value is not None else None

    @field_validator("teams", mode="before")
    @classmethod
    def _split_teams(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(team.strip() for team in value.split(",") if team.strip())
        return value

    @field_validator("budgets", mode="before")
    @classmethod
    def _parse_budgets(cls, value: object) -> object:
        return parse_budgets(value) if isinstance(value, str) else value

    @field_validator("invoice_id")
    @classmethod
    def _check_invoice_id(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "/" in value):
            raise ValueError("must be a non-empty invoice ID without '/'")
        return value.strip() if value is not None else None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("listen_address")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen_address(value)
        return value

    @model_validator(mode="after")
    def _need_token(self) -> Settings:
        if self.api_token is None and self.api_token_file is None:
            raise ValueError("NORTHFLANK_API_TOKEN: required (or set NORTHFLANK_API_TOKEN_FILE)")
        return self

    @model_validator(mode="after")
    def _unbilled_depth_within_depth(self) -> Settings:
        depth = self.unbilled_depth
        if depth is not None and DEPTHS.index(depth) > DEPTHS.index(self.depth):
            raise ValueError(
                f"NORTHFLANK_UNBILLED_DEPTH: {depth} is deeper than NORTHFLANK_DEPTH ({self.depth})"
            )
        return self

    @property
    def month_depth(self) -> Depth:
        """How far this month's spend is broken down: the setting, else ``project`` (or
        ``NORTHFLANK_DEPTH`` when that is ``team``); ``team``: not at all (the team totals
        come from the usage list)."""
        if not self.unbilled:
            return "team"
        if self.unbilled_depth is not None:
            return self.unbilled_depth
        return "team" if self.depth == "team" else "project"

    @property
    def host(self) -> str:
        return parse_listen_address(self.listen_address)[0]

    @property
    def port(self) -> int:
        return parse_listen_address(self.listen_address)[1]

    @property
    def view(self) -> View:
        return View(frozenset(self.teams), self.depth, self.budgets)

    def contracts(self) -> Contracts:
        """What to ask the API for and accept (one per exporter: it remembers the
        contract last seen)."""
        return Contracts(self.api_contract, self.amount_unit)

    @property
    def staleness_seconds(self) -> float:
        """The bound given, or 3 x the poll interval and at least an hour."""
        if self.max_staleness_seconds is not None:
            return self.max_staleness_seconds
        return max(3 * self.poll_interval_seconds, 3600.0)

    def token(self) -> str:
        """The API token, read from the file when the variable is unset."""
        if self.api_token is not None:
            return self.api_token.get_secret_value()
        assert self.api_token_file is not None  # guaranteed by _need_token
        return read_token_file(self.api_token_file)


def parse_listen_address(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) -> (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("must be host:port, e.g. 0.0.0.0:9721")
    return host.strip("[]"), int(port_text)


def read_token_file(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(
            f"NORTHFLANK_API_TOKEN_FILE: cannot read {path}: {exc.strerror or exc}"
        ) from None
    if not token:
        raise SettingsError(f"NORTHFLANK_API_TOKEN_FILE: {path} is empty")
    return token


# ---------------------------------------------------------------------------------------
# Flags: one per field, generated from the model, so the two can never drift apart.

SECRET_FIELDS = frozenset({"api_token"})


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


@dataclass(frozen=True)
class Invocation:
    """What the command line asked for: the settings and the flags that are not settings."""

    settings: Settings
    once: bool
    demo: bool
    web: WebConfig | None = None
    demo_contract: Literal["current", "legacy"] = "current"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2 (argparse would print usage too)
        raise SettingsError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="northflank-exporter",
        description="Prometheus exporter for Northflank invoices. Every flag is also an "
        "environment variable NORTHFLANK_<NAME>; a flag beats the environment.",
    )
    parser.add_argument("--once", action="store_true", help="poll once, print the exposition")
    parser.add_argument(
        "--demo", action="store_true", help="poll an embedded simulated API (no token needed)"
    )
    parser.add_argument(
        "--demo-contract",
        choices=("current", "legacy"),
        default="current",
        help="the billing contract the demo's simulated API answers in (default current)",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    for name, field in Settings.model_fields.items():
        default = (
            "(unset)" if field.default in (None, ()) or field.default_factory else field.default
        )
        parser.add_argument(
            flag_name(name),
            dest=name,
            default=argparse.SUPPRESS,
            metavar=name.split("_")[-1].upper(),
            help=f"env {env_name(name)}; default {default}",
        )
    return parser


def load(argv: Sequence[str], *, demo_overrides: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags and the environment; raise SettingsError on bad input."""
    return parse(argv, demo_overrides=demo_overrides).settings


def parse(argv: Sequence[str], *, demo_overrides: Mapping[str, str] | None = None) -> Invocation:
    """Parse the command line (flags beat ``NORTHFLANK_*`` variables) into an Invocation.

    With ``--demo``, ``demo_overrides`` (the simulator's URL and token) come before the
    environment but after flags.
    """
    args = vars(build_parser().parse_args(list(argv)))
    once, demo = bool(args.pop("once")), bool(args.pop("demo"))
    demo_contract = args.pop("demo_contract")
    args.pop("version")
    flags = {key: value for key, value in args.items() if isinstance(value, str)}
    init: dict[str, Any] = dict(demo_overrides or {}) if demo else {}
    init.update(flags)
    try:
        settings = Settings(**init)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, flags)) from None
    if settings.api_token is None:
        settings.token()  # a missing or empty token file is a settings error, found now
    web = None
    if settings.web_config_file is not None:
        try:
            web = webconfig.load(settings.web_config_file)
        except webconfig.WebConfigError as exc:
            where = (
                "--web-config-file" if "web_config_file" in flags else "NORTHFLANK_WEB_CONFIG_FILE"
            )
            raise SettingsError(f"{where}: {exc}") from None
    return Invocation(settings, once, demo, web, demo_contract)


def _describe(exc: ValidationError, flags: Mapping[str, str]) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    message = str(error["msg"]).removeprefix("Value error, ")
    if message[1:2].islower():  # pydantic's "Input should ..." reads on after the name
        message = message[:1].lower() + message[1:]
    if not loc:  # a model-level check: its message already names the variable
        return str(error["msg"]).removeprefix("Value error, ")
    field = loc[0]
    where = flag_name(field) if field in flags else env_name(field)
    if error["type"] == "extra_forbidden":
        return f"{where.upper()}: unknown setting"
    if error["type"] == "missing":
        return f"{where}: required"
    got = "" if field in SECRET_FIELDS else f" (got {error.get('input')!r})"
    return f"{where}: {message}{got}"
