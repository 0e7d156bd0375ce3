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

from skywarden.server.keys import generate_key
from skywarden.server.observability.redaction import register_secret
from skywarden.server.settings import MIN_SECRET_LENGTH, Settings

SECRET_FILE_NAME = "server-secret"
GENERATED_SECRET_BYTES = 48
ADMIN_HASH_FILE_NAME = "admin-token.sha256"


class CredentialError(ValueError):
    """A configured secret or token is unusable; the message names the setting."""


def _data_dir_error(data_dir: str, exc: OSError) -> CredentialError:
    reason = exc.strerror or type(exc).__name__
    return CredentialError(
        f"invalid setting data_dir ({Path(data_dir).resolve()}): {reason}; "
        "it must be a folder this user can create and write (SKYWARDEN_DATA_DIR or --data-dir)"
    )


def ensure_data_dir(data_dir: str) -> Path:
    """Create the data folder (0700) or explain, naming the setting, why it cannot be used."""
    path = Path(data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise _data_dir_error(data_dir, exc) from None
    return path


def _write_private(path: Path, text: str) -> None:
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


def _token_file(path: str, setting: str) -> str:
    """A token read from a file; inline tokens are checked when the settings are read."""
    token = _read_file(path, setting)
    if len(token) < MIN_SECRET_LENGTH:
        raise CredentialError(f"invalid setting {setting} ({path}): needs at least {MIN_SECRET_LENGTH} characters")
    return token


def load_server_secret(secret: str, secret_file: str, data_dir: str) -> bytes:
    if secret:
        value, setting = secret, "secret"
    elif secret_file:
        value, setting = _read_file(secret_file, "secret_file"), "secret_file"
    else:
        path = ensure_data_dir(data_dir) / SECRET_FILE_NAME
        try:
            if not path.exists():
                _write_private(path, secrets.token_urlsafe(GENERATED_SECRET_BYTES))
            value, setting = path.read_text().strip(), f"generated secret file {path}"
        except OSError as exc:
            raise _data_dir_error(data_dir, exc) from None
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
    """Return the credential and, when none exists yet, a newly generated token.

    A generated token is not stored here: the server keeps its hash only once it has started
    (``Credentials.keep_generated_admin_token``), so a start that fails (port in use) leaves
    nothing behind and the next start generates and prints a token again."""
    if admin_token or admin_token_file:
        token = admin_token or _token_file(admin_token_file, "admin_token_file")
        return AdminCredential(token_hash(token)), None
    path = Path(data_dir) / ADMIN_HASH_FILE_NAME
    try:
        if path.exists():
            return AdminCredential(path.read_text().strip()), None
    except OSError as exc:
        raise _data_dir_error(data_dir, exc) from None
    token = generate_key("admin")
    return AdminCredential(token_hash(token)), token


def store_admin_token_hash(data_dir: str, token: str) -> None:
    try:
        _write_private(ensure_data_dir(data_dir) / ADMIN_HASH_FILE_NAME, token_hash(token))
    except OSError as exc:
        raise _data_dir_error(data_dir, exc) from None


def rotate_admin_token(data_dir: str) -> str:
    token = generate_key("admin")
    store_admin_token_hash(data_dir, token)
    return token


@dataclass
class Credentials:
    secret: bytes
    admin: AdminCredential
    generated_admin_token: str | None = None
    metrics: AdminCredential | None = None
    data_dir: str = ""

    def keep_generated_admin_token(self) -> str | None:
        """Store the hash of a token generated at this start; return the token to show once."""
        if self.generated_admin_token is None:
            return None
        store_admin_token_hash(self.data_dir, self.generated_admin_token)
        return self.generated_admin_token

    def discard_generated_admin_token(self) -> None:
        """The start failed after the hash was kept: forget it, so the next start shows a new token."""
        if self.generated_admin_token is not None:
            (Path(self.data_dir) / ADMIN_HASH_FILE_NAME).unlink(missing_ok=True)


def load_metrics_credential(token: str, token_file: str) -> AdminCredential | None:
    if not token and not token_file:
        return None
    return AdminCredential(token_hash(token or _token_file(token_file, "metrics_token_file")))


def refuse_local_secrets_for_a_shared_store(settings: Settings) -> None:
    """With a store other instances share, a secret generated into this instance's data dir would
    differ from theirs (keys made elsewhere would not verify here); so would an admin token."""
    if settings.resolved_database_url.startswith("sqlite:///"):
        return
    if not (settings.secret or settings.secret_file):
        raise CredentialError(
            "invalid setting secret_file: with a shared key store (database_url) every instance needs the same "
            "server secret; set SKYWARDEN_SECRET_FILE (or --secret-file) to a file all instances read"
        )
    if not (settings.admin_token or settings.admin_token_file):
        raise CredentialError(
            "invalid setting admin_token_file: with a shared key store every instance needs the same admin token; "
            "set SKYWARDEN_ADMIN_TOKEN_FILE (or --admin-token-file)"
        )


def prepare_credentials(settings: Settings) -> Credentials:
    refuse_local_secrets_for_a_shared_store(settings)
    for configured in (settings.admin_token, settings.metrics_token):
        register_secret(configured)  # arbitrary strings: the key regex would not find them in a log line
    secret = load_server_secret(settings.secret, settings.secret_file, settings.data_dir)
    admin, generated = load_admin_credential(settings.admin_token, settings.admin_token_file, settings.data_dir)
    metrics = load_metrics_credential(settings.metrics_token, settings.metrics_token_file)
    return Credentials(secret, admin, generated, metrics, settings.data_dir)
