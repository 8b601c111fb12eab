"""TLS and basic auth from a web configuration file: the file's checks, then over the wire."""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
from pathlib import Path

import bcrypt
import httpx
import pytest

from exporter import metrics as m
from exporter.simulator import Organisation, Simulator, generate_organisation
from exporter.webconfig import WebConfigError, load
from tests.harness import TOKEN, Exporter, api_env, wait_for

PASSWORD = "s3cret pass"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def bcrypt_hash(password: str, prefix: str = "$2b$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return prefix + hashed[4:]


# --------------------------------------------------------------------------- certificates


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        cwd=d,
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        openssl(
            "req",
            *ec,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=d,
        )
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            cwd=d,
        )
    return d


def client_context(pki: Path, *, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if with_cert:
        context.load_cert_chain(pki / "client.crt", pki / "client.key")
    return context


@pytest.fixture
def sim_org() -> Organisation:
    return generate_organisation(teams=2)


def env_for(sim: Simulator, config: Path) -> dict[str, str]:
    return api_env(sim.url, TOKEN, web_config_file=str(config), poll_interval_seconds="5")


# --------------------------------------------------------------------------- the file


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tls_server_config: [", "is not YAML"),
        ("basic_auth_users:\n  alice: plaintext", "basic_auth_users.alice: not a bcrypt hash"),
        ("no_such_key: 1", "no_such_key: Extra inputs are not permitted"),
        ("tls_server_config:\n  cert_file: a.crt", "tls_server_config.key_file: Field required"),
        ("tls_server_config:\n  cert_file: no.crt\n  key_file: no.key", "cannot load certificate"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: SSL3",
            "tls_server_config.min_version",
        ),
    ],
    ids=["yaml", "not-bcrypt", "unknown-key", "missing-key-file", "missing-cert", "bad-version"],
)
def test_bad_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(content)
    with pytest.raises(WebConfigError, match=message.replace(".", r"\.")):
        load(path)


def test_client_auth_needs_a_ca(tmp_path: Path, pki: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {pki}/server.crt\n  key_file: {pki}/server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
    )
    with pytest.raises(WebConfigError, match="needs client_ca_file"):
        load(path)


@pytest.mark.e2e
def test_a_bad_file_stops_the_exporter_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  alice: nope\n")
    result = subprocess.run(
        [sys.executable, "-m", "exporter"],
        env={
            "PATH": "/usr/bin:/bin",
            "NORTHFLANK_API_TOKEN": "t",
            "NORTHFLANK_WEB_CONFIG_FILE": str(path),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"northflank-exporter: NORTHFLANK_WEB_CONFIG_FILE: {path}: "
        "basic_auth_users.alice: not a bcrypt hash\n"
    )


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_bcrypt_variants(tmp_path: Path, prefix: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: '{bcrypt_hash(PASSWORD, prefix)}'\n")
    config = load(path)
    assert config.authorized(basic("alice", PASSWORD))
    assert config.authorized(basic("alice", PASSWORD))  # the remembered path
    assert not config.authorized(basic("alice", "wrong"))
    assert not config.authorized(basic("bob", PASSWORD))
    assert not config.authorized(None)
    assert not config.authorized("Bearer x")
    assert not config.authorized("Basic !!!not-base64")
    assert not config.authorized("Basic " + base64.b64encode(b"no-colon").decode())


def test_paths_are_relative_to_the_file(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    monkeypatch.chdir(tmp_path)  # not where the certificates are
    path = pki / "web.yml"
    path.write_text(text)
    assert isinstance(load(path).tls, ssl.SSLContext)
    elsewhere = tmp_path / "web.yml"  # the same file beside no certificates
    elsewhere.write_text(text)
    with pytest.raises(WebConfigError, match=r"server\.crt"):
        load(elsewhere)


# --------------------------------------------------------------------------- over the wire


@pytest.mark.e2e
def test_tls_and_basic_auth(sim: Simulator, pki: Path, tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text(
        f"tls_server_config:\n  cert_file: {pki}/server.crt\n  key_file: {pki}/server.key\n"
        f"basic_auth_users:\n  prometheus: '{bcrypt_hash(PASSWORD, '$2y$')}'\n"
    )
    verify = client_context(pki)
    with Exporter(env=env_for(sim, config), verify=verify) as exporter:
        assert exporter.http.get("/-/ready").status_code in (200, 503)  # open to probes
        wait_for(lambda: exporter.http.get("/-/ready").status_code == 200)  # no credentials
        url = exporter.url
        missing = httpx.get(f"{url}/metrics", verify=verify)
        wrong = httpx.get(f"{url}/metrics", verify=verify, auth=("prometheus", "nope"))
        index = httpx.get(f"{url}/", verify=verify)
        good = httpx.get(f"{url}/metrics", verify=verify, auth=("prometheus", PASSWORD))
        healthy = httpx.get(f"{url}/-/healthy", verify=verify)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{exporter.port}/metrics", timeout=2)  # no plain HTTP
        untrusted = ssl.create_default_context()  # the system's CAs do not know ours
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/-/healthy", verify=untrusted)
        assert exporter.http.get("/-/healthy").status_code == 200  # still serving after those
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Basic realm="northflank-exporter"'
    assert wrong.status_code == 401
    assert index.status_code == 401
    assert good.status_code == 200
    assert m.TEAM_COST.name in good.text
    assert healthy.status_code == 200


@pytest.mark.e2e
def test_client_certificates(sim: Simulator, pki: Path, tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text(
        f"tls_server_config:\n  cert_file: {pki}/server.crt\n  key_file: {pki}/server.key\n"
        f"  client_ca_file: {pki}/ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n"
    )
    with_cert = client_context(pki, with_cert=True)
    with Exporter(env=env_for(sim, config), verify=with_cert) as exporter:
        exporter.wait_ready()
        good = exporter.http.get("/metrics")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{exporter.url}/metrics", verify=client_context(pki), timeout=3)
        assert exporter.http.get("/-/healthy").status_code == 200
    assert good.status_code == 200
