"""Render the Helm chart helm/northflank-exporter with the helm binary from .tools/.

The tools come from scripts/install-tools (helm, hadolint, kubernetes-validate), which
puts them in .tools/bin; .ci/run puts that folder on PATH. A test that needs a missing
tool fails (never skips) and says to run scripts/install-tools.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "northflank-exporter"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
TOOLS_BIN = REPO / ".tools" / "bin"

RELEASE = "northflank-exporter"
NAMESPACE = "monitoring"


def tool(name: str) -> str:
    """Path of a tool from PATH or .tools/bin; fail the test when it is not installed."""
    found = shutil.which(name) or shutil.which(name, path=str(TOOLS_BIN))
    if found is None:
        pytest.fail(
            f"{name} not found on PATH nor in {TOOLS_BIN}: run scripts/install-tools "
            f'(then export PATH="$PWD/.tools/bin:$PATH")',
            pytrace=False,
        )
    return found


def run(args: Sequence[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": str(Path(tempfile.gettempdir()) / "nfx-helm-cache")}
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return run([tool("helm"), *args])


def template(
    values: Mapping[str, Any] | None = None,
    *,
    values_files: Iterable[Path] = (),
    set_values: Iterable[str] = (),
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart; values given as a dict go in a temporary file."""
    args = ["template", release, str(CHART), "--namespace", namespace, *extra]
    for path in values_files:
        args += ["--values", str(path)]
    with tempfile.TemporaryDirectory() as tmp:
        if values is not None:
            path = Path(tmp) / "values.json"  # JSON is YAML
            path.write_text(json.dumps(values))
            args += ["--values", str(path)]
        for item in set_values:
            args += ["--set", item]
        return helm(*args)


def render(
    values: Mapping[str, Any] | None = None,
    *,
    values_files: Iterable[Path] = (),
    set_values: Iterable[str] = (),
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[dict[str, Any]]:
    """The rendered manifests, parsed; fails the test when helm does."""
    result = template(
        values,
        values_files=values_files,
        set_values=set_values,
        release=release,
        namespace=namespace,
    )
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(docs: Iterable[Mapping[str, Any]], kind: str) -> dict[str, Any]:
    found = [dict(doc) for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def kinds(docs: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted(doc["kind"] for doc in docs)


def rule_groups(docs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The PrometheusRule's groups: a Prometheus rule file's content."""
    return list(one(docs, "PrometheusRule")["spec"]["groups"])


# The values the unit tests in tests/rules/ are written for (release "northflank-exporter"
# in namespace "monitoring": job="northflank-exporter", namespace="monitoring").
RULE_VALUES: dict[str, Any] = {
    "prometheusRule": {"enabled": True},
    "budgets": {
        "total": 1000,
        "default": 100,
        "teams": {"team-big": 500},
        "projects": {"team-a/web": 50, "team-b/web": 80},
        "projectDefault": 20,
    },
}
ALERTS = [
    "NorthflankExporterDown",
    "NorthflankDataStale",
    "NorthflankPollsFailing",
    "NorthflankTokenExpiringSoon",
    "NorthflankInvoiceOverThreshold",
    "NorthflankSpendOverThreshold",
    "NorthflankSpendProjectedOverThreshold",
    "NorthflankTeamInvoiceOverBudget",
    "NorthflankTeamSpendOverBudget",
    "NorthflankTeamSpendProjectedOverBudget",
    "NorthflankCreditRunsOut",
    "NorthflankProjectSpendOverBudget",
    "NorthflankInvoiceUnpaid",
    "NorthflankInvoicePaymentFailed",
]
# NorthflankProjectSpendOverBudget is one rule per project budget, and one for the default.
PROJECT_RULES = 3
RULES = len(ALERTS) - 1 + PROJECT_RULES


def alerts_of(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rules by alert name (of the rules sharing a name, the last)."""
    return {rule["alert"]: rule for rule in rules_of(groups)}


def rules_of(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"]]
