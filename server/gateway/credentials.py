"""An upstream's configured values, read when it starts: text as it is, a secret from its file or
environment variable. Every value is registered with the log redaction before it is used."""

from __future__ import annotations

import os
from collections.abc import Mapping

from skywarden.server.observability.redaction import register_owned_secrets, register_secret
from skywarden.server.upstreams import SecretSource, credentials_owner, is_header_value

MAX_SECRET_BYTES = 8192


class MissingSecret(Exception):
    """A secret's file or variable cannot be read; the message names the source, never a value."""


def resolve(source: SecretSource) -> str:
    if source.text is not None:
        return source.text
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None:
            raise MissingSecret(f"environment variable {source.env} is not set")
    else:
        assert source.file is not None
        try:
            with open(source.file, "rb") as fh:
                raw = fh.read(MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise MissingSecret(f"file {source.file} cannot be read: {exc.strerror}") from None
        if len(raw) > MAX_SECRET_BYTES:
            raise MissingSecret(f"file {source.file} is larger than {MAX_SECRET_BYTES} bytes")
        try:
            value = raw.decode().splitlines()[0] if raw.strip() else ""
        except UnicodeDecodeError:
            raise MissingSecret(f"file {source.file} is not UTF-8 text") from None
    if not value or "\x00" in value or "\n" in value or "\r" in value:
        raise MissingSecret(f"{source.describe()} is empty or holds a line break or NUL")
    register_secret(value)
    return source.prefix + value


def resolve_all(sources: Mapping[str, SecretSource], upstream: str, headers: bool = False) -> dict[str, str]:
    """Every value of an upstream's ``env`` or ``headers`` (its credentials, whichever way they are
    given). One read from a file or variable is redacted from every log line (``resolve``); the
    values given as text, the operator's or an admin's, are kept as the upstream's own
    (``register_owned_secrets``): redacted while it keeps them, but never from the fields that say
    what happened, so that no admin can blank the audit trail by choosing one. With ``headers``
    every value must be a header value."""
    values = {name: resolve(source) for name, source in sources.items()}
    if headers:
        for name, source in sources.items():
            if not is_header_value(values[name]):
                raise MissingSecret(f"{source.describe()} for header {name} is not a header value (visible ASCII)")
    texts = [value for source, value in zip(sources.values(), values.values(), strict=True) if source.text is not None]
    register_owned_secrets(credentials_owner(upstream), texts)
    return values
