"""The chart's PrometheusRule: the rendered rules pass `promtool check rules`, and the
promtool unit tests in tests/rules/ show each alert firing when it should and staying
quiet when it should not.

Needs helm (scripts/install-tools) and promtool (Debian's prometheus package).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helmchart import (
    ALERTS,
    CHART,
    RULE_VALUES,
    RULES,
    alerts_of,
    render,
    rule_groups,
    rules_of,
    run,
    template,
)
from tests.promserver import require_binary

pytestmark = pytest.mark.tools  # helm, promtool
RULE_TESTS = Path(__file__).resolve().parent / "rules"


def write_rule_file(groups: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def promtool(*args: str) -> tuple[int, str]:
    result = run([require_binary("promtool"), *args])
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def groups() -> list[dict[str, Any]]:
    return rule_groups(render(RULE_VALUES))


def test_rendered_rules_pass_promtool_check(groups: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_rule_file(groups, tmp_path / "rules.yaml")
    code, output = promtool("check", "rules", str(path))
    assert code == 0, output
    assert f"SUCCESS: {RULES} rules found" in output, output
    assert len(rules_of(groups)) == RULES
    assert sorted(alerts_of(groups)) == sorted(ALERTS)


def test_every_rule_file_variant_passes_promtool_check(tmp_path: Path) -> None:
    """Defaults (no budgets) and every option on render valid rules too."""
    full = CHART / "ci" / "full-values.yaml"
    for name, docs in (
        ("defaults", render({"prometheusRule": {"enabled": True}})),
        ("full", render(values_files=[full])),
        (
            "custom-selector",
            render(
                {
                    **RULE_VALUES,
                    "prometheusRule": {
                        "enabled": True,
                        "selector": 'job=~"northflank.*", cluster="prod"',
                    },
                }
            ),
        ),
    ):
        path = write_rule_file(rule_groups(docs), tmp_path / f"{name}.yaml")
        code, output = promtool("check", "rules", str(path))
        assert code == 0, f"{name}: {output}"


def test_promtool_unit_tests(groups: list[dict[str, Any]], tmp_path: Path) -> None:
    write_rule_file(groups, tmp_path / "rules.yaml")
    files = sorted(RULE_TESTS.glob("*.yaml"))
    assert files, f"no promtool tests in {RULE_TESTS}"
    for path in files:
        shutil.copy(path, tmp_path / path.name)
    # promtool resolves each test file's rule_files (rules.yaml) beside that file
    code, output = promtool("test", "rules", *(str(tmp_path / path.name) for path in files))
    assert code == 0, output
    assert output.count("SUCCESS") == len(files), output


def test_each_alert_is_shown_firing_and_quiet() -> None:
    """Every alert has a unit test where it fires and one where it stays quiet."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS.glob("*.yaml"):
        suite = yaml.safe_load(path.read_text())
        assert suite["rule_files"] == ["rules.yaml"], path
        for case in suite["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
                for alert in check.get("exp_alerts") or []:
                    # the annotations are checked as rendered, not left out
                    assert {"summary", "description"} <= set(alert["exp_annotations"]), path
    assert set(ALERTS) <= firing, f"never shown firing: {set(ALERTS) - firing}"
    assert set(ALERTS) <= quiet, f"never shown quiet: {set(ALERTS) - quiet}"


def test_each_alert_has_summary_description_and_a_runbook(groups: list[dict[str, Any]]) -> None:
    readme = (CHART / "README.md").read_text()
    headings = set(re.findall(r"^### (\w+)$", readme, flags=re.M))
    for name, rule in alerts_of(groups).items():
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        assert rule["labels"]["severity"], name
        assert name in headings, f"no runbook section '### {name}' in the chart README"


def test_runbook_url_points_at_the_readme_sections() -> None:
    url = "https://example.com/helm/northflank-exporter/README.md"
    docs = render({**RULE_VALUES, "prometheusRule": {"enabled": True, "runbookUrl": url}})
    rules = rules_of(rule_groups(docs))
    assert len(rules) == RULES
    for rule in rules:
        assert rule["annotations"]["runbook_url"] == f"{url}#{rule['alert'].lower()}"


def token_expiry_case(expiry: int, exp_alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """A promtool test case: the token expires at ``expiry`` (Unix seconds), evaluated
    at 2h (past the alert's default ``for`` of 1h)."""
    labels = 'job="northflank-exporter", namespace="monitoring", instance="10.0.0.7:9721"'
    return {
        "interval": "1m",
        "input_series": [
            {
                "series": f"northflank_token_expiry_timestamp_seconds{{{labels}}}",
                "values": f"{expiry}x150",
            }
        ],
        "alert_rule_test": [
            {
                "eval_time": "2h",
                "alertname": "NorthflankTokenExpiringSoon",
                "exp_alerts": exp_alerts,
            }
        ],
    }


def test_token_expiry_threshold_comes_from_values(tmp_path: Path) -> None:
    """prometheusRule.alerts.NorthflankTokenExpiringSoon.days moves the point where the
    alert fires: a token 20 days from expiry, quiet with the default 14 days (tests/rules/
    token.yaml), fires with 30; one 35 days from expiry stays quiet."""
    docs = render(
        {
            "prometheusRule": {
                "enabled": True,
                "alerts": {"NorthflankTokenExpiringSoon": {"days": 30}},
            }
        }
    )
    write_rule_file(rule_groups(docs), tmp_path / "rules.yaml")
    firing = {
        "exp_labels": {
            "severity": "warning",
            "job": "northflank-exporter",
            "namespace": "monitoring",
            "instance": "10.0.0.7:9721",
        },
        "exp_annotations": {
            "summary": "The Northflank API token of the exporter expires soon.",
            "description": (
                "The Northflank API token used by monitoring/northflank-exporter expires in"
                " 19d 22h 0m 0s (1970-01-21 00:00:00 +0000 UTC) (threshold 30 days). Once it"
                " has expired every poll fails with reason auth: create a new token and"
                " replace the Secret's value."
            ),
        },
    }
    suite = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [token_expiry_case(20 * 86400, [firing]), token_expiry_case(35 * 86400, [])],
    }
    path = tmp_path / "token-30-days.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    code, output = promtool("test", "rules", str(path))
    assert code == 0, output
    assert "SUCCESS" in output, output


def test_no_empty_rule_group() -> None:
    every_alert_off = {name: {"enabled": False} for name in ALERTS}
    result = template(
        {**RULE_VALUES, "prometheusRule": {"enabled": True, "alerts": every_alert_off}}
    )
    assert result.returncode == 0, result.stderr
    (rule,) = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == []
