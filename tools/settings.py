"""How a plugin declares its settings: a frozen dataclass whose fields use ``setting(...)``.

    @dataclass(frozen=True)
    class AcmeSettings:
        base_url: Url = setting("https://api.acme.test", help="Acme API base URL")
        api_key: Secret = setting(help="Acme API key")  # no default: required
        timeout: float = setting(10.0, help="seconds an Acme call may take")

Field ``x`` of plugin ``acme`` is the setting ``acme_x``: flag ``--acme-x``, environment
``SKYWARDEN_ACME_X``, config ``acme_x = ...`` (or ``x = ...`` in ``[skywarden.tool_settings.acme]``).
The server checks every value against the field's type when it starts and stops with one line
naming the setting and where the value came from. Types: ``str``, ``int``, ``float``, ``bool``,
``Url``, ``Secret``, ``Literal[...]``, ``list[str]`` or ``tuple[str, ...]`` (comma-separated in a
flag or the environment, an array in TOML), any of these ``| None`` (an empty value is ``None``),
and ``Annotated[T, validator, ...]`` with marshmallow validators.
"""

from __future__ import annotations

import dataclasses
from typing import Any

MISSING: Any = dataclasses.MISSING


class Secret:
    """A secret value (an upstream API key): ``str()`` and ``repr()`` show ``***``; ``reveal()``
    gives the value. The HTTP client accepts a ``Secret`` as a header value. A ``Secret`` setting
    ``acme_x`` may also be read from a file named by ``acme_x_file`` (its trailing newline
    dropped), and its value is never shown in an error, a log line or ``--help``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def prefixed(self, prefix: str) -> Secret:
        """The secret with ``prefix`` before it, still a secret: ``key.prefixed("Bearer ")`` for an
        Authorization header (``f"Bearer {key}"`` would send ``Bearer ***``)."""
        return Secret(prefix + self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class Url(str):
    """An http(s) URL setting, with a host and without user name, password, query or fragment; a
    trailing ``/`` is dropped, so ``f"{base_url}/things"`` works. A private or loopback address in
    it is one the operator chose: the plugin's HTTP client may call that origin (the SSRF guard
    lets it through)."""


def setting(default: Any = MISSING, *, help: str, alias: str | None = None) -> Any:
    """A dataclass field that is a setting. No ``default``: the setting is required (the server
    does not start without it). ``help`` is shown by ``skywarden serve --help`` and the settings
    reference. ``alias`` is an older full name (``"nws_base_url"``) still accepted everywhere the
    new one is, with a deprecation warning at start-up; when both are given the new one wins.
    Settings are keyword-only fields, so a required one may follow one with a default."""
    metadata = {"help": help, "alias": alias}
    if default is MISSING:
        return dataclasses.field(metadata=metadata, kw_only=True)
    if isinstance(default, list):  # a list default is copied for each instance
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata, kw_only=True)
    return dataclasses.field(default=default, metadata=metadata, kw_only=True)
