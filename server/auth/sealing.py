"""Upstream credentials at rest: an admin-added upstream's ``env`` and ``headers`` values are kept
in the key store sealed with AES-256-GCM, under a key derived from the server secret (HKDF-SHA256,
this purpose alone). Each value is bound to its upstream and place (``calc``, ``headers``,
``Authorization``), so a sealed value copied to another upstream or header does not open.

A store read with another server secret cannot open them: ``Unsealable`` says so, and the
upstream must be given its credentials again.
"""

from __future__ import annotations

import base64
import os

PURPOSE = b"skywarden upstream credentials v1"
VERSION = "v1."
NONCE_BYTES = 12


class Unsealable(Exception):
    """A sealed value that this server secret cannot open (another secret, or altered)."""


def sealing_key(server_secret: bytes) -> bytes:
    """cryptography is imported here: a server that keeps no upstream loads it only when it must."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE).derive(server_secret)


def _bound_to(*place: str) -> bytes:
    return "\x00".join(place).encode()


def seal(key: bytes, value: str, *place: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, value.encode(), _bound_to(*place))
    return VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(key: bytes, token: object, *place: str) -> str:
    if not isinstance(token, str) or not token.startswith(VERSION):
        raise Unsealable("not a sealed value")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.urlsafe_b64decode(token[len(VERSION) :].encode())
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _bound_to(*place)).decode()
    except (InvalidTag, ValueError):
        raise Unsealable("sealed with another server secret, or altered") from None
