"""TLS and basic auth, from a web configuration file in the exporter toolkit's format.

The format is the one Prometheus' own exporters read (``--web.config.file``)::

    tls_server_config:
      cert_file: server.crt          # paths are relative to this file
      key_file: server.key
      client_ca_file: ca.crt         # optional: verify client certificates
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hashes ($2a$, $2b$, $2y$)

:func:`load` reads and checks it once, at start (a bad file is a settings error);
:class:`WebConfig` then answers two questions on the request path: the TLS context
to wrap connections with, and whether an ``Authorization`` header is good.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


class WebConfigError(Exception):
    """The file is missing, not YAML, or says something this exporter cannot do."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Strict):
    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    client_auth_type: ClientAuth = "NoClientCert"
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] | None = None
    # Accepted for compatibility with files written for Go exporters; Python's ssl
    # module picks its own cipher suites and curves.
    cipher_suites: list[str] | None = None
    curve_preferences: list[str] | None = None
    prefer_server_cipher_suites: bool | None = None


class _File(_Strict):
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] | None = None
    http_server_config: dict[str, Any] | None = None  # accepted, not applied


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    _verified: set[bytes] = field(default_factory=set)  # digests of checked credentials
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def needs_auth(self) -> bool:
        return bool(self.users)

    def authorized(self, header: str | None) -> bool:
        """True when ``Authorization: Basic ...`` names a user with the right password.

        bcrypt is slow on purpose (tens of milliseconds a check); a pair that passed
        once is remembered by its SHA-256, so Prometheus' scrapes don't pay it each time.
        """
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        hashed = self.users.get(user.decode("utf-8", "replace"))
        if hashed is None:
            bcrypt.checkpw(password, _DUMMY_HASH)  # same time for unknown users
            return False
        digest = hashlib.sha256(hashed + b"\0" + decoded).digest()
        with self._lock:
            if any(hmac.compare_digest(digest, known) for known in self._verified):
                return True
        if not bcrypt.checkpw(password, hashed):
            return False
        with self._lock:
            self._verified.add(digest)
        return True


_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=10))


def load(path: Path) -> WebConfig:
    """Read and check the file; raise WebConfigError with a one-line reason."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WebConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path} is not YAML: {str(exc).splitlines()[0]}") from None
    try:
        parsed = _File.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise WebConfigError(f"{path}: {where}: {first['msg']}") from None
    config = WebConfig()
    for user, hashed in (parsed.basic_auth_users or {}).items():
        if not hashed.startswith(BCRYPT_PREFIXES):
            raise WebConfigError(f"{path}: basic_auth_users.{user}: not a bcrypt hash")
        config.users[user] = hashed.encode()
    if parsed.tls_server_config is not None:
        config.tls = _tls_context(parsed.tls_server_config, path.parent)
    return config


def _tls_context(tls: TlsServerConfig, base: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    cert, key = base / tls.cert_file, base / tls.key_file
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"cannot load certificate {cert} and key {key}: {exc}") from None
    if tls.client_ca_file:
        try:
            context.load_verify_locations(base / tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"cannot load client CA {tls.client_ca_file}: {exc}") from None
    context.verify_mode = {
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_OPTIONAL,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[tls.client_auth_type]
    if context.verify_mode != ssl.CERT_NONE and not tls.client_ca_file:
        raise WebConfigError(f"client_auth_type {tls.client_auth_type} needs client_ca_file")
    return context
