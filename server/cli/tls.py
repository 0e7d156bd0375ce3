"""The TLS context for serving HTTPS directly (TLS 1.2 and newer only)."""

from __future__ import annotations

import ssl


class TLSConfigError(ValueError):
    pass


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext | None:
    if not cert and not key:
        return None
    if not cert or not key:
        raise TLSConfigError("invalid setting tls_cert/tls_key: give both or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"invalid setting tls_cert/tls_key: cannot load them ({exc})") from None
    return context
