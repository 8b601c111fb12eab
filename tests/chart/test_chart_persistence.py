"""The exporter's state on a volume (persistence.*, NORTHFLANK_STATE_FILE): the claim the
chart makes, an existing claim, none; the mount, the variable and the read-only root;
the manifests validated against Kubernetes' schemas; bad values refused; and the check
that the breakdown of the spend not yet invoiced goes no deeper than the invoice's.

Needs helm and kubernetes-validate from scripts/install-tools.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helmchart import RELEASE, kinds, one, render, run, template, tool

pytestmark = pytest.mark.tools  # helm, kubernetes-validate (scripts/install-tools)
STATE_DIR = "/var/lib/northflank-exporter"
STATE_FILE = f"{STATE_DIR}/state.json"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(one(docs, "Deployment")["spec"]["template"]["spec"])


def exporter(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = pod(docs)["containers"]
    return dict(only)


def env_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in exporter(docs)["env"]}


def state_volume(docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The claim the pod mounts at the state directory, checked against the variable."""
    mounts = [m for m in exporter(docs)["volumeMounts"] if m["mountPath"] == STATE_DIR]
    volumes = {v["name"]: v for v in pod(docs)["volumes"]}
    if not mounts:
        assert "NORTHFLANK_STATE_FILE" not in env_of(docs)
        assert "state" not in volumes
        return None
    (mount,) = mounts
    assert not mount.get("readOnly")
    assert env_of(docs)["NORTHFLANK_STATE_FILE"] == STATE_FILE
    return dict(volumes[mount["name"]])


def test_off_by_default(default_docs: list[dict[str, Any]]) -> None:
    assert state_volume(default_docs) is None
    assert "PersistentVolumeClaim" not in kinds(default_docs)


def test_a_claim_of_its_own() -> None:
    docs = render({"persistence": {"enabled": True}})
    claim = one(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == RELEASE
    assert claim["metadata"]["namespace"] == "monitoring"
    assert claim["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert "annotations" not in claim["metadata"]
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "100Mi"}},
    }  # no storageClassName: the cluster's default class
    assert state_volume(docs) == {"name": "state", "persistentVolumeClaim": {"claimName": RELEASE}}
    # only the volume (and /tmp) is writable; the volume belongs to the pod's group
    assert exporter(docs)["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod(docs)["securityContext"]["fsGroup"] == 65532
    # a ReadWriteOnce volume on one node at a time: the old pod goes before the new one
    assert one(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    ("storage_class", "expected"),
    [("", None), ("-", ""), ("fast-ssd", "fast-ssd")],
    ids=["cluster-default", "no-class", "named"],
)
def test_storage_class(storage_class: str, expected: str | None) -> None:
    docs = render({"persistence": {"enabled": True, "storageClass": storage_class}})
    spec = one(docs, "PersistentVolumeClaim")["spec"]
    assert spec.get("storageClassName", None) == expected
    assert ("storageClassName" in spec) == (expected is not None)


def test_claim_settings_from_values() -> None:
    docs = render(
        {
            "fullnameOverride": "nfx",
            "persistence": {
                "enabled": True,
                "size": "1Gi",
                "accessModes": ["ReadWriteOncePod"],
                "annotations": {"example.com/backup": "daily"},
            },
        }
    )
    claim = one(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "nfx"
    assert claim["metadata"]["annotations"] == {"example.com/backup": "daily"}
    assert claim["spec"]["accessModes"] == ["ReadWriteOncePod"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert state_volume(docs) == {"name": "state", "persistentVolumeClaim": {"claimName": "nfx"}}


def test_an_existing_claim() -> None:
    docs = render({"persistence": {"enabled": True, "existingClaim": "nfx-state"}})
    assert "PersistentVolumeClaim" not in kinds(docs)
    assert state_volume(docs) == {
        "name": "state",
        "persistentVolumeClaim": {"claimName": "nfx-state"},
    }
    # an existing claim named while persistence is off is not mounted
    docs = render({"persistence": {"enabled": False, "existingClaim": "nfx-state"}})
    assert state_volume(docs) is None
    assert "PersistentVolumeClaim" not in kinds(docs)


@pytest.mark.parametrize("version", ["1.25.0", "1.37.0"])
@pytest.mark.parametrize(
    "persistence",
    [
        {"enabled": True, "storageClass": "-", "annotations": {"a": "b"}},
        {"enabled": True, "existingClaim": "nfx-state"},
    ],
    ids=["claim", "existing-claim"],
)
def test_manifests_validate_against_kubernetes_schemas(
    persistence: dict[str, Any], version: str, tmp_path: Path
) -> None:
    docs = [d for d in render({"persistence": persistence}) if d["kind"] not in CRD_KINDS]
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    result = run([tool("kubernetes-validate"), "--strict", "-k", version, str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    validated = len(re.findall(r"\bINFO\b.*\bpassed\b", result.stdout, flags=re.I))
    assert validated == len(docs), result.stdout


@pytest.mark.parametrize(
    ("persistence", "message"),
    [
        ({"enabled": "yes"}, "/persistence/enabled"),
        ({"size": "lots"}, "/persistence/size"),
        ({"size": 100}, "/persistence/size"),
        ({"accessModes": []}, "/persistence/accessModes"),
        ({"accessModes": ["ReadOnlyMany"]}, "/persistence/accessModes/0"),
        ({"accessModes": "ReadWriteOnce"}, "/persistence/accessModes"),
        ({"storageClass": "Fast_SSD"}, "/persistence/storageClass"),
        ({"existingClaim": "Not_A_Name"}, "/persistence/existingClaim"),
        ({"annotations": {"a": 1}}, "/persistence/annotations/a"),
        ({"mountPath": "/data"}, "mountPath"),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else None,
)
def test_schema_rejects_bad_persistence(persistence: dict[str, Any], message: str) -> None:
    result = template({"persistence": persistence})
    assert result.returncode != 0, f"accepted {persistence}"
    assert "schema" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("depth", "unbilled_depth", "ok"),
    [
        ("resource", "resource", True),
        ("resource", "team", True),
        ("project", "project", True),
        ("project", "resource", False),
        ("team", "project", False),
        ("team", "team", True),
    ],
)
def test_unbilled_depth_at_most_the_depth(depth: str, unbilled_depth: str, ok: bool) -> None:
    result = template({"config": {"depth": depth, "unbilledDepth": unbilled_depth}})
    assert (result.returncode == 0) == ok, result.stderr
    if ok:
        env = env_of([d for d in yaml.safe_load_all(result.stdout) if d])
        assert (env["NORTHFLANK_DEPTH"], env["NORTHFLANK_UNBILLED_DEPTH"]) == (
            depth,
            unbilled_depth,
        )
    else:
        assert (
            f"config.unbilledDepth ({unbilled_depth}) goes deeper than config.depth ({depth})"
            in result.stderr
        )
        assert f"set config.unbilledDepth={depth}, or config.depth={unbilled_depth}" in (
            result.stderr
        )
