"""A plugin's settings dataclass as settings: one ``PluginSetting`` per field, checked by a
marshmallow field made from the field's type.

``declared_settings`` describes what each plugin reads (``load_settings(..., plugins=...)`` and
the CLI take that); ``settings_instance`` builds the plugin's dataclass from checked values.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from marshmallow import ValidationError, fields

from skywarden.server.plugins.model import PluginInfo
from skywarden.server.settings import (
    PluginSetting,
    PluginSettings,
    Settings,
    SettingsError,
    plugin_values,
    setting_fields,
)
from skywarden.tools.settings import Secret, Url

SUPPORTED_TYPES = "str, int, float, bool, Url, Secret, Literal[...], list[str], tuple[str, ...], or one of them | None"
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,59}\Z")
FULL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}\Z")


class SettingsDeclarationError(SettingsError):
    """A plugin's settings dataclass breaks the contract (the plugin's bug, not the operator's)."""


class _Setting(fields.Field):
    """A setting's value: ``convert`` turns text (a flag, the environment) or a TOML value into it."""

    kind = ""

    def convert(self, value: Any) -> Any:
        raise NotImplementedError

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return self.convert(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class _Text(_Setting):
    kind = "text"

    def convert(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value


class _Integer(_Setting):
    kind = "integer"

    def convert(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
            return int(value)
        raise ValueError("must be an integer")


class _Number(_Setting):
    kind = "number"

    def convert(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("must be a number")
        try:
            number = float(value)
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number


class _Flag(_Setting):
    kind = "true or false"
    WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}

    def convert(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in self.WORDS:
            return self.WORDS[value.strip().lower()]
        raise ValueError("must be true or false")


class _Url(_Setting):
    kind = "http(s) URL"

    def convert(self, value: Any) -> Url:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        text = value.strip().rstrip("/")
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018  (reading it checks it)
        except ValueError:
            raise ValueError("must be an http(s) URL such as https://api.example.com") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://api.example.com")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not contain a user name or password (give credentials in a Secret setting)")
        if parts.query or parts.fragment:
            raise ValueError("must not contain a query or fragment")
        return Url(text)


class _Secret(_Setting):
    kind = "secret"

    def convert(self, value: Any) -> Secret:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if not value.strip():
            raise ValueError("must not be empty")
        return Secret(value.strip())

    def _validate(self, value: Any) -> None:
        """Validators see the value itself; what they answer never quotes it."""
        revealed = value.reveal() if isinstance(value, Secret) else value
        try:
            super()._validate(revealed)
        except ValidationError as exc:
            messages = exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]
            raise ValidationError([str(m).replace(str(revealed), "***") for m in messages]) from None


class _Choice(_Setting):
    def __init__(self, choices: tuple[Any, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = choices
        self.kind = "one of " + ", ".join(str(c) for c in choices)

    def convert(self, value: Any) -> Any:
        for choice in self.choices:
            if value == choice and type(value) is type(choice):
                return choice
            if isinstance(value, str) and value.strip() == str(choice):
                return choice
        raise ValueError(f"must be {self.kind}")


class _Strings(_Setting):
    kind = "comma-separated list"

    def __init__(self, container: type[list[str]] | type[tuple[str, ...]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.container = container

    def convert(self, value: Any) -> list[str] | tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
            raise ValueError("must be a list of strings (comma-separated in a flag or the environment)")
        return self.container(item.strip() for item in items if item.strip())


class _Optional(_Setting):
    """``T | None``: an empty value is None."""

    def __init__(self, inner: _Setting, **kwargs: Any) -> None:
        super().__init__(allow_none=True, **kwargs)
        self.inner = inner
        self.kind = f"{inner.kind}; empty = none"

    def convert(self, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return self.inner.deserialize(value)


_SIMPLE: dict[Any, type[_Setting]] = {
    str: _Text,
    int: _Integer,
    float: _Number,
    bool: _Flag,
    Url: _Url,
    Secret: _Secret,
}


def _field_for(annotation: Any, validators: Sequence[Callable[[Any], Any]] = ()) -> _Setting:
    """The marshmallow field that checks a value of this type; ValueError for a type that is not supported."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        extras = arguments[1:]
        if not all(callable(extra) for extra in extras):
            raise ValueError("Annotated[...] extras must be marshmallow validators (help goes in setting(help=...))")
        return _field_for(arguments[0], [*validators, *extras])
    if origin in (Union, types.UnionType):
        others = [a for a in arguments if a is not type(None)]
        if len(others) != 1 or len(arguments) != 2:
            raise ValueError("a union must be one type | None")
        return _Optional(_field_for(others[0], validators))
    if annotation in _SIMPLE:
        return _SIMPLE[annotation](validate=list(validators))
    if origin is Literal and all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in arguments):
        return _Choice(arguments, validate=list(validators))
    if origin is list and arguments == (str,):
        return _Strings(list, validate=list(validators))
    if origin is tuple and arguments == (str, ...):
        return _Strings(tuple, validate=list(validators))
    shown = annotation.__name__ if isinstance(annotation, type) and origin is None else str(annotation)
    raise ValueError(f"unsupported type {shown} ({SUPPORTED_TYPES})")


def _check(field: _Setting, value: Any) -> Any:
    """A value through the field: the checked value, or ValueError with a reason fit for one line."""
    try:
        return field.deserialize(value)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]
        reason = "; ".join(str(m).rstrip(".") for m in messages)
        raise ValueError(reason[:1].lower() + reason[1:]) from None
    except Exception as exc:  # a validator that cannot take this value: one line, not a traceback
        raise ValueError(f"its check failed ({type(exc).__name__})") from None


def _declared(plugin: str, cls: type, f: dataclasses.Field[Any], annotation: Any) -> PluginSetting:
    where = f"plugin {plugin}: setting {f.name}"
    if not FIELD_NAME.match(f.name):
        raise SettingsDeclarationError(f"{where}: a setting's name must be lower-case letters, digits and _")
    if not isinstance(f.metadata.get("help"), str) or not f.metadata["help"].strip():
        raise SettingsDeclarationError(f"{where}: declare it with setting(default, help='...')")
    alias = f.metadata.get("alias")
    if alias is not None and (not isinstance(alias, str) or not FULL_NAME.match(alias)):
        raise SettingsDeclarationError(f"{where}: alias must be a full setting name such as nws_base_url")
    try:
        field = _field_for(annotation)
    except ValueError as exc:
        raise SettingsDeclarationError(f"{where}: {exc}") from None
    parse = functools.partial(_check, field)
    default: Any = dataclasses.MISSING
    declared = f.default_factory() if callable(f.default_factory) else f.default
    if declared is not dataclasses.MISSING:
        try:
            default = parse(declared)
        except ValueError as exc:
            raise SettingsDeclarationError(f"{where}: its default {exc}") from None
    secret = isinstance(field, _Secret) or (isinstance(field, _Optional) and isinstance(field.inner, _Secret))
    return PluginSetting(
        plugin=plugin,
        field=f.name,
        help=f.metadata["help"].strip(),
        parse=parse,
        default=default,
        secret=secret,
        alias=alias,
        kind=field.kind,
    )


@functools.lru_cache(maxsize=256)
def settings_of(plugin: str, cls: type) -> tuple[PluginSetting, ...]:
    """The settings a settings dataclass declares; SettingsDeclarationError for one that breaks the contract."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise SettingsDeclarationError(f"plugin {plugin}: settings must be a dataclass")
    if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]  # set on every dataclass, not in its stubs
        raise SettingsDeclarationError(f"plugin {plugin}: settings must be a frozen dataclass: @dataclass(frozen=True)")
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # an annotation that does not resolve
        raise SettingsDeclarationError(f"plugin {plugin}: settings annotations: {type(exc).__name__}: {exc}") from None
    return tuple(_declared(plugin, cls, f, hints[f.name]) for f in dataclasses.fields(cls))


def _title(plugin: PluginInfo) -> str:
    return f"{plugin.name} ({plugin.distribution})" if plugin.distribution else plugin.name


def declared_settings(plugins: Iterable[PluginInfo]) -> tuple[PluginSettings, ...]:
    """What each plugin reads from the settings, for ``load_settings`` and the CLI. Refuses (one
    line) a setting name one plugin shares with the server or another plugin."""
    described = []
    owner = {f.name: "a setting of the server" for f in setting_fields()}
    for plugin in plugins:
        declared = settings_of(plugin.name, plugin.settings) if plugin.settings is not None else ()
        for setting in declared:
            for name in setting.spellings():
                if name in owner:
                    raise SettingsDeclarationError(f"plugin {plugin.name}: setting {name} is already {owner[name]}")
                owner[name] = f"a setting of plugin {plugin.name}"
        table = plugin.settings is None and plugin.settings_group is not None
        described.append(PluginSettings(plugin.name, _title(plugin), declared, table=table))
    return tuple(described)


def settings_instance(plugin: PluginInfo, settings: Settings) -> Any:
    """The plugin's settings dataclass, built from its checked values."""
    assert plugin.settings is not None
    described = PluginSettings(plugin.name, _title(plugin), settings_of(plugin.name, plugin.settings))
    return plugin.settings(**plugin_values(described, settings))


def secret_texts(instance: Any) -> list[str]:
    """The revealed values of an instance's ``Secret`` settings (for the log redaction)."""
    if not dataclasses.is_dataclass(instance):
        return []
    found = (getattr(instance, f.name) for f in dataclasses.fields(instance))
    return [value.reveal() for value in found if isinstance(value, Secret) and value]


def url_values(instance: Any) -> list[str]:
    """The values of an instance's ``Url`` settings: origins its operator chose."""
    if not dataclasses.is_dataclass(instance):
        return []
    found = (getattr(instance, f.name) for f in dataclasses.fields(instance))
    return [str(value) for value in found if isinstance(value, Url)]
