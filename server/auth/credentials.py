"""The server secret (for key hashing) and the admin token (kept only as a hash).

Both come from a setting or a file. With none configured, the secret is
generated into the data dir (0600) and the admin token is generated once,
printed once, and only its hash is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from skywarden.server.auth.keys import generate_key
from skywarden.server.observability.redaction import register_secret

SECRET_FILE_NAME = "server-secret"
ADMIN_HASH_FILE_NAME = "admin-token.sha256"
MIN_SECRET_LENGTH = 32


class CredentialError(ValueError):
    """A configured secret or token is unusable; the message names the setting."""


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _read_file(path: str, setting: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise CredentialError(f"invalid setting {setting}: cannot read {path!r} ({exc.strerror})") from None


def load_server_secret(secret: str, secret_file: str, data_dir: str) -> bytes:
    if secret:
        value, setting = secret, "secret"
    elif secret_file:
        value, setting = _read_file(secret_file, "secret_file"), "secret_file"
    else:
        path = Path(data_dir) / SECRET_FILE_NAME
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(48))
        value, setting = path.read_text().strip(), f"generated secret file {path}"
    if len(value) < MIN_SECRET_LENGTH:
        raise CredentialError(
            f"invalid setting {setting}: the server secret needs at least {MIN_SECRET_LENGTH} characters"
        )
    return value.encode("utf-8")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class AdminCredential:
    """Checks the admin token against a stored SHA-256, in constant time."""

    digest: str

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(token_hash(token), self.digest)


def load_admin_credential(admin_token: str, admin_token_file: str, data_dir: str) -> tuple[AdminCredential, str | None]:
    """Return the credential and, when one was generated just now, the new token (to print once)."""
    if admin_token or admin_token_file:
        token = admin_token or _read_file(admin_token_file, "admin_token_file")
        if len(token) < MIN_SECRET_LENGTH:
            raise CredentialError(f"invalid setting admin_token: needs at least {MIN_SECRET_LENGTH} characters")
        return AdminCredential(token_hash(token)), None
    path = Path(data_dir) / ADMIN_HASH_FILE_NAME
    if path.exists():
        return AdminCredential(path.read_text().strip()), None
    token = generate_key("admin")
    _write_private(path, token_hash(token))
    return AdminCredential(token_hash(token)), token


def rotate_admin_token(data_dir: str) -> str:
    token = generate_key("admin")
    _write_private(Path(data_dir) / ADMIN_HASH_FILE_NAME, token_hash(token))
    return token


@dataclass
class Credentials:
    secret: bytes
    admin: AdminCredential
    generated_admin_token: str | None = None
    metrics: AdminCredential | None = None


def load_metrics_credential(token: str, token_file: str) -> AdminCredential | None:
    if not token and not token_file:
        return None
    value = token or _read_file(token_file, "metrics_token_file")
    if len(value) < MIN_SECRET_LENGTH:
        raise CredentialError(f"invalid setting metrics_token: needs at least {MIN_SECRET_LENGTH} characters")
    return AdminCredential(token_hash(value))


def prepare_credentials(settings) -> Credentials:
    for configured in (settings.admin_token, settings.metrics_token):
        register_secret(configured)  # arbitrary strings: the key regex would not find them in a log line
    secret = load_server_secret(settings.secret, settings.secret_file, settings.data_dir)
    admin, generated = load_admin_credential(settings.admin_token, settings.admin_token_file, settings.data_dir)
    metrics = load_metrics_credential(settings.metrics_token, settings.metrics_token_file)
    return Credentials(secret, admin, generated, metrics)
