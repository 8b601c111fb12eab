"""The Helm chart helm/northflank-exporter as a whole: helm lint, the objects each
values file renders, the manifests validated offline against Kubernetes' schemas, the
values schema rejecting bad values, and the chart README documenting every value.

Needs helm and kubernetes-validate from scripts/install-tools.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helmchart import (
    ALERTS,
    CHART,
    FULL_VALUES,
    helm,
    kinds,
    one,
    render,
    run,
    template,
    tool,
)

pytestmark = pytest.mark.tools  # helm, kubernetes-validate (scripts/install-tools)
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# The chart's kubeVersion floor and the newest schema kubernetes-validate carries.
KUBERNETES_VERSIONS = ["1.25.0", "1.37.0"]


# --------------------------------------------------------------------------- lint


@pytest.mark.parametrize("values", [None, FULL_VALUES], ids=["defaults", "every-option-on"])
def test_helm_lint(values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)]
    if values is not None:
        args += ["--values", str(values)]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_every_option_of_the_full_values_is_on(full_docs: list[dict[str, Any]]) -> None:
    """ci/full-values.yaml really switches everything on."""
    assert kinds(full_docs) == [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "PrometheusRule",
        "Secret",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    alerts = [
        rule["alert"]
        for g in one(full_docs, "PrometheusRule")["spec"]["groups"]
        for rule in g["rules"]
    ]
    assert sorted(set(alerts)) == sorted(ALERTS)
    # two project budgets and the default: one rule each
    assert alerts.count("NorthflankProjectSpendOverBudget") == 3
    assert len(alerts) == len(ALERTS) + 2


def test_defaults_render_only_the_basics(default_docs: list[dict[str, Any]]) -> None:
    # no token given: no Secret (the pod waits for one named like the release)
    assert kinds(default_docs) == ["Deployment", "Service", "ServiceAccount"]


# --------------------------------------------------------------------------- validation


def write_manifests(docs: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] not in CRD_KINDS]))
    return path


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("which", ["defaults", "every-option-on"])
def test_manifests_validate_against_kubernetes_schemas(
    which: str, version: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    docs = request.getfixturevalue("default_docs" if which == "defaults" else "full_docs")
    path = write_manifests(docs, tmp_path / "manifests.yaml")
    result = run([tool("kubernetes-validate"), "--strict", "-k", version, str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    validated = len(re.findall(r"\bINFO\b.*\bpassed\b", result.stdout, flags=re.I))
    expected = sum(1 for d in docs if d["kind"] not in CRD_KINDS)
    assert validated == expected, result.stdout


def test_kubernetes_validate_catches_a_broken_manifest(tmp_path: Path) -> None:
    """The validation above is not a formality: a wrong field fails it."""
    docs = render()
    deployment = one(docs, "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {
        "name": "http"
    }
    deployment["spec"]["replicas"] = "one"
    path = write_manifests([deployment], tmp_path / "broken.yaml")
    result = run([tool("kubernetes-validate"), "--strict", "-k", "1.37.0", str(path)])
    assert result.returncode != 0, result.stdout


# --------------------------------------------------------------------------- values schema


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"config": {"depth": "deep"}}, "/config/depth"),
        ({"config": {"pollIntervalSeconds": 0}}, "/config/pollIntervalSeconds"),
        ({"config": {"pollIntervalSeconds": "15m"}}, "/config/pollIntervalSeconds"),
        ({"config": {"amountUnit": "dollars"}}, "/config/amountUnit"),
        ({"config": {"apiContract": "newest"}}, "/config/apiContract"),
        ({"config": {"ratelimitReserve": -1}}, "/config/ratelimitReserve"),
        ({"config": {"ratelimitReserve": 1.5}}, "/config/ratelimitReserve"),
        ({"config": {"ratelimitReserve": "100"}}, "/config/ratelimitReserve"),
        ({"config": {"invoiceRefreshSeconds": -1}}, "/config/invoiceRefreshSeconds"),
        ({"config": {"invoiceRefreshSeconds": "1d"}}, "/config/invoiceRefreshSeconds"),
        ({"config": {"unbilledDepth": "resources"}}, "/config/unbilledDepth"),
        ({"config": {"unbilledDepth": None}}, "missing property 'unbilledDepth'"),
        ({"config": {"logFormat": "xml"}}, "/config/logFormat"),
        ({"config": {"maxConcurrency": 0}}, "/config/maxConcurrency"),
        ({"config": {"apiUrl": "api.northflank.com"}}, "/config/apiUrl"),
        ({"config": {"teams": "team-a,team-b"}}, "/config/teams"),
        ({"config": {"unbilled": "yes"}}, "/config/unbilled"),
        ({"config": {"pollIntervalSecs": 60}}, "pollIntervalSecs"),
        ({"budgets": {"teams": {"team-a": -5}}}, "/budgets/teams/team-a"),
        ({"budgets": {"total": "lots"}}, "/budgets/total"),
        ({"budgets": {"projects": {"web": 10}}}, "invalid propertyName 'web'"),
        ({"budgets": {"projects": {"team-a/web/x": 10}}}, "invalid propertyName"),
        ({"budgets": {"projects": {"/web": 10}}}, "invalid propertyName"),
        ({"budgets": {"projects": {"team a/web": 10}}}, "invalid propertyName"),
        ({"budgets": {"projects": {"team-a/web": -1}}}, "/budgets/projects/team-a~1web"),
        ({"budgets": {"projects": {"team-a/web": "10"}}}, "/budgets/projects/team-a~1web"),
        ({"budgets": {"projectDefault": -0.5}}, "/budgets/projectDefault"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"serviceMonitor": {"interval": "5 minutes"}}, "/serviceMonitor/interval"),
        ({"serviceMonitor": {"enabled": "true"}}, "/serviceMonitor/enabled"),
        ({"service": {"port": 70000}}, "/service/port"),
        ({"prometheusRule": {"alerts": {"NorthflankInvoiceUnpaid": {"days": -1}}}}, "days"),
        ({"prometheusRule": {"alerts": {"NorthflankTokenExpiringSoon": {"days": 0}}}}, "days"),
        ({"prometheusRule": {"alerts": {"NorthflankDataStale": {"for": "soon"}}}}, "for"),
        ({"prometheusRule": {"selector": '{job="x"}'}}, "/prometheusRule/selector"),
        (
            {"prometheusRule": {"alerts": {"NorthflankInvoicePaymentFailed": {"statuses": []}}}},
            "statuses",
        ),
        (
            {
                "prometheusRule": {
                    "alerts": {"NorthflankInvoicePaymentFailed": {"statuses": ["failed|.*"]}}
                }
            },
            "statuses/0",
        ),
        (
            {"prometheusRule": {"alerts": {"NorthflankCreditRunsOut": {"minElapsedHours": 0}}}},
            "minElapsedHours",
        ),
        (
            {"prometheusRule": {"alerts": {"NorthflankProjectSpendOverBudget": {"budget": 1}}}},
            "budget",
        ),
        ({"existingSecret": "Not_A_Name"}, "/existingSecret"),
        ({"tokn": "typo"}, "tokn"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else None,
)
def test_values_schema_rejects_bad_values(values: dict[str, Any], message: str) -> None:
    result = template(values)
    assert result.returncode != 0, f"accepted {values}"
    assert "values don't meet the specifications of the schema" in result.stderr or (
        "schema" in result.stderr
    ), result.stderr
    assert message in result.stderr, result.stderr


def test_values_schema_accepts_the_shipped_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    for values in (
        None,
        {"budgets": {"total": 0, "default": 12.5, "teams": {"t-1": 1}}},
        {"budgets": {"projects": {"t-1/p-1": 0, "t-2/p.2": 12.5}, "projectDefault": 0}},
        {"config": {"ratelimitReserve": 0, "invoiceRefreshSeconds": 0.5}},
    ):
        result = template(values)
        assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- documentation


def leaf_keys(values: Any, prefix: str = "") -> list[str]:
    """Dotted keys of values.yaml, down to the first level that is a leaf, a list or an
    empty map (and no deeper than the alert names under prometheusRule.alerts)."""
    if not isinstance(values, dict) or not values:
        return [prefix]
    if prefix.startswith("prometheusRule.alerts.") or prefix in (
        "podSecurityContext",
        "securityContext",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "strategy",
    ):
        return [prefix]
    keys: list[str] = []
    for key, value in values.items():
        keys += leaf_keys(value, f"{prefix}.{key}" if prefix else key)
    return keys


def test_chart_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))
    missing = [key for key in leaf_keys(values) if key not in documented]
    assert not missing, f"values missing from the chart README's table: {missing}"
    assert not documented - set(leaf_keys(values)), "README documents values that do not exist"


def test_chart_readme_install_instructions() -> None:
    readme = (CHART / "README.md").read_text()
    for needle in (
        "helm install",
        "existingSecret",
        "serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
        "dashboard.enabled=true",
    ):
        assert needle in readme, needle
