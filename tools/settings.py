"""How a plugin declares its settings: a dataclass whose fields use ``setting(...)``.

Each field ``x`` of plugin ``acme`` is the setting ``acme_x``: flag ``--acme-x``, environment
``SKYWARDEN_ACME_X``, config ``acme_x = ...`` (or ``[skywarden.tool_settings.acme] x = ...``).
Values are checked at start-up against the field's type; a ``Secret`` may also come from a file
(``acme_x_file``) and is never shown or logged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

MISSING: Any = dataclasses.MISSING


class Secret:
    """A secret value (an upstream API key): ``str()`` and ``repr()`` show ``***``; ``reveal()``
    gives the value. The HTTP client accepts a ``Secret`` as a header value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

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
    """An http(s) URL setting. A private or loopback address in it is one the operator chose:
    the plugin's HTTP client may call that origin (see the SSRF guard in docs/plugins.md)."""


def setting(default: Any = MISSING, *, help: str, alias: str | None = None) -> Any:
    """A dataclass field that is a setting: ``help`` is shown by ``skywarden serve --help`` and
    the settings reference; ``alias`` is an older full name still accepted, with a warning."""
    metadata = {"help": help, "alias": alias}
    if default is MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)
