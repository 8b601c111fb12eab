"""What the Helm chart helm/northflank-exporter's templates render: the hardened
Deployment, its probes and port, the token from a Secret, every contract setting from
values, the web config, the NetworkPolicy, ServiceMonitor, PrometheusRule and dashboard.

Needs helm from scripts/install-tools.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from exporter.settings import Settings, env_name
from tests.helmchart import (
    CHART,
    NAMESPACE,
    RELEASE,
    helm,
    kinds,
    one,
    render,
    template,
)

# Every setting of the contract. NORTHFLANK_API_TOKEN is the one the chart never sets:
# the token is mounted from a Secret and given as NORTHFLANK_API_TOKEN_FILE.
pytestmark = pytest.mark.tools  # helm, kubernetes-validate (scripts/install-tools)
CONTRACT_SETTINGS = {
    "NORTHFLANK_API_TOKEN",
    "NORTHFLANK_API_TOKEN_FILE",
    "NORTHFLANK_API_URL",
    "NORTHFLANK_INVOICE_ID",
    "NORTHFLANK_TEAMS",
    "NORTHFLANK_DEPTH",
    "NORTHFLANK_POLL_INTERVAL_SECONDS",
    "NORTHFLANK_REQUEST_BUDGET_PER_HOUR",
    "NORTHFLANK_MAX_CONCURRENCY",
    "NORTHFLANK_REQUEST_TIMEOUT_SECONDS",
    "NORTHFLANK_MAX_STALENESS_SECONDS",
    "NORTHFLANK_AMOUNT_UNIT",
    "NORTHFLANK_LISTEN_ADDRESS",
    "NORTHFLANK_WEB_CONFIG_FILE",
    "NORTHFLANK_LOG_LEVEL",
    "NORTHFLANK_LOG_FORMAT",
    "NORTHFLANK_UNBILLED",
    "NORTHFLANK_BUDGETS",
    "NORTHFLANK_API_CONTRACT",
    "NORTHFLANK_RATELIMIT_RESERVE",
    "NORTHFLANK_UNBILLED_DEPTH",
    "NORTHFLANK_STATE_FILE",
    "NORTHFLANK_INVOICE_REFRESH_SECONDS",
}


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container(docs)["env"]}


def test_monitoring_resources(full_docs: list[dict[str, Any]]) -> None:
    """ServiceMonitor and PrometheusRule (CRDs, not in kubernetes-validate's schemas)."""
    service = one(full_docs, "Service")
    monitor = one(full_docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "http"
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "2m"
    assert endpoint["scrapeTimeout"] == "20s"
    assert endpoint["scheme"] == "https"  # webConfig.tls
    assert endpoint["basicAuth"]["password"] == {"name": "nf-exporter-scrape", "key": "password"}
    assert endpoint["metricRelabelings"][0]["action"] == "drop"

    rule = one(full_docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for group in rule["spec"]["groups"]:
        assert group["name"]
        assert group["rules"]
        for r in group["rules"]:
            assert set(r) == {"alert", "expr", "for", "labels", "annotations"}
            assert r["labels"]["owner"] == "platform"  # alertLabels
            assert r["annotations"]["runbook_url"].endswith("#" + r["alert"].lower())


# --------------------------------------------------------------------------- deployment


def test_deployment_is_hardened(default_docs: list[dict[str, Any]]) -> None:
    deployment = one(default_docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(default_docs)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}

    account = one(default_docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_probes_resources_and_port(default_docs: list[dict[str, Any]]) -> None:
    c = container(default_docs)
    assert c["image"] == "northflank-exporter:0.1.0"  # appVersion
    assert c["ports"] == [{"name": "http", "containerPort": 9721, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http", "scheme": "HTTP"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http", "scheme": "HTTP"}
    assert c["resources"]["requests"]
    assert c["resources"]["limits"]["memory"]
    assert env_of(default_docs)["NORTHFLANK_LISTEN_ADDRESS"] == "0.0.0.0:9721"
    service = one(default_docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_https_probes_with_tls(full_docs: list[dict[str, Any]]) -> None:
    c = container(full_docs)
    assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert c["ports"][0]["containerPort"] == 9800


def token_volume(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "token"]
    (mount,) = [m for m in container(docs)["volumeMounts"] if m["name"] == "token"]
    assert mount["readOnly"] is True
    assert env_of(docs)["NORTHFLANK_API_TOKEN_FILE"] == mount["mountPath"] + "/api-token"
    assert "NORTHFLANK_API_TOKEN" not in env_of(docs)
    return dict(volume["secret"])


def test_token_from_a_secret_the_chart_makes() -> None:
    docs = render({"token": "nf-secret-token"})
    secret = one(docs, "Secret")
    assert secret["metadata"]["name"] == RELEASE
    assert base64.b64decode(secret["data"]["api-token"]).decode() == "nf-secret-token"
    volume = token_volume(docs)
    assert volume["secretName"] == RELEASE
    assert volume["items"] == [{"key": "api-token", "path": "api-token"}]
    # the token itself appears nowhere but in the Secret
    deployment_text = json.dumps(one(docs, "Deployment"))
    assert "nf-secret-token" not in deployment_text
    assert base64.b64encode(b"nf-secret-token").decode() not in deployment_text


def test_token_from_an_existing_secret() -> None:
    docs = render({"existingSecret": "northflank-credentials", "existingSecretKey": "token"})
    assert "Secret" not in kinds(docs)
    volume = token_volume(docs)
    assert volume["secretName"] == "northflank-credentials"
    assert volume["items"] == [{"key": "token", "path": "api-token"}]


def test_without_a_token_the_pod_waits_for_the_release_secret() -> None:
    docs = render()
    assert token_volume(docs)["secretName"] == RELEASE
    result = helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {NAMESPACE} create secret generic {RELEASE}" in notes
    assert "--from-literal=api-token=" in notes


def test_token_and_existing_secret_exclude_each_other() -> None:
    result = template({"token": "x", "existingSecret": "y"})
    assert result.returncode != 0
    assert "not both" in result.stderr


def test_every_contract_setting_is_settable_from_values(full_docs: list[dict[str, Any]]) -> None:
    env = env_of(full_docs)
    settings = {name for name in env if name.startswith("NORTHFLANK_")}
    assert settings == CONTRACT_SETTINGS - {"NORTHFLANK_API_TOKEN"}
    # and every setting the exporter has (its own settings class) is among them
    exporter_settings = {env_name(field) for field in Settings.model_fields}
    assert exporter_settings - {"NORTHFLANK_API_TOKEN"} <= settings
    assert env == {
        "NORTHFLANK_API_TOKEN_FILE": "/etc/northflank-exporter/token/api-token",
        "NORTHFLANK_API_URL": "https://api.northflank.com",
        "NORTHFLANK_INVOICE_ID": "inv-2024-05",
        "NORTHFLANK_TEAMS": "team-a,team-b",
        "NORTHFLANK_DEPTH": "project",
        "NORTHFLANK_POLL_INTERVAL_SECONDS": "1800",
        "NORTHFLANK_REQUEST_BUDGET_PER_HOUR": "600",
        "NORTHFLANK_MAX_CONCURRENCY": "4",
        "NORTHFLANK_REQUEST_TIMEOUT_SECONDS": "15",
        "NORTHFLANK_MAX_STALENESS_SECONDS": "7200",
        "NORTHFLANK_AMOUNT_UNIT": "major",
        "NORTHFLANK_API_CONTRACT": "current",
        "NORTHFLANK_RATELIMIT_RESERVE": "50",
        "NORTHFLANK_INVOICE_REFRESH_SECONDS": "43200",
        "NORTHFLANK_UNBILLED": "true",
        "NORTHFLANK_UNBILLED_DEPTH": "project",
        "NORTHFLANK_STATE_FILE": "/var/lib/northflank-exporter/state.json",
        "NORTHFLANK_BUDGETS": "*=300,team-a=1200,team-b=450.5",
        "NORTHFLANK_LISTEN_ADDRESS": "0.0.0.0:9800",
        "NORTHFLANK_WEB_CONFIG_FILE": "/etc/northflank-exporter/web/web-config.yml",
        "NORTHFLANK_LOG_LEVEL": "DEBUG",
        "NORTHFLANK_LOG_FORMAT": "json",
        "TZ": "UTC",
    }


def test_defaults_leave_optional_settings_to_the_exporter(
    default_docs: list[dict[str, Any]],
) -> None:
    env = env_of(default_docs)
    for unset in (
        "INVOICE_ID",
        "TEAMS",
        "MAX_STALENESS_SECONDS",
        "WEB_CONFIG_FILE",
        "BUDGETS",
        "STATE_FILE",
    ):
        assert f"NORTHFLANK_{unset}" not in env
    # the contract's defaults, spelt out
    assert env["NORTHFLANK_POLL_INTERVAL_SECONDS"] == "900"
    assert env["NORTHFLANK_UNBILLED"] == "true"
    assert env["NORTHFLANK_AMOUNT_UNIT"] == "auto"
    assert env["NORTHFLANK_API_CONTRACT"] == "auto"
    assert env["NORTHFLANK_RATELIMIT_RESERVE"] == "100"
    assert env["NORTHFLANK_INVOICE_REFRESH_SECONDS"] == "86400"
    assert env["NORTHFLANK_UNBILLED_DEPTH"] == "project"


def test_web_config_is_mounted_from_a_secret(full_docs: list[dict[str, Any]]) -> None:
    secrets = {s["metadata"]["name"]: s for s in full_docs if s["kind"] == "Secret"}
    web = secrets["nf-exporter-web-config"]
    config = yaml.safe_load(base64.b64decode(web["data"]["web-config.yml"]))
    assert config["basic_auth_users"]["prometheus"].startswith("$2b$")
    assert config["tls_server_config"]["cert_file"].endswith("tls.crt")
    pod = one(full_docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "web-config"]
    assert volume["secret"]["secretName"] == "nf-exporter-web-config"


def test_network_policy(full_docs: list[dict[str, Any]]) -> None:
    policy = one(full_docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"]
    dns, api, extra = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert api["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert extra["ports"] == [{"port": 3128, "protocol": "TCP"}]


def test_optional_resources_are_off_by_default(default_docs: list[dict[str, Any]]) -> None:
    for kind in ("ServiceMonitor", "NetworkPolicy", "PrometheusRule", "ConfigMap"):
        assert kind not in kinds(default_docs)


def test_dashboard_configmap_for_the_grafana_sidecar(full_docs: list[dict[str, Any]]) -> None:
    configmap = one(full_docs, "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Billing"}
    (name,) = configmap["data"]
    assert name.endswith(".json")
    shipped = json.loads((CHART / "dashboards" / "northflank-exporter.json").read_text())
    assert json.loads(configmap["data"][name]) == shipped


def test_servicemonitor_defaults() -> None:
    docs = render({"serviceMonitor": {"enabled": True}})
    (endpoint,) = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["interval"] == "60s"
    assert endpoint["scrapeTimeout"] == "10s"
    assert endpoint["scheme"] == "http"
