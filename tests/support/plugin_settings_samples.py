"""Plugins with settings and hooks, registered by hand (``PluginInfo``) for the settings and
lifecycle tests, and a runner that serves them as ``skywarden`` would (``python -c RUNNER ...``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from marshmallow import RAISE, Schema, validate

from skywarden.server.plugins.registry import PluginInfo, RegisteredTool, ToolRegistry, register_tool
from skywarden.tools import Secret, ToolResult, Url, setting, text_content

ACME_DISTRIBUTION = "acme-tools 1.2"


@dataclass(frozen=True)
class AcmeSettings:
    base_url: Url = setting("https://api.acme.test", help="Acme API base URL")
    api_key: Secret = setting(help="Acme API key")
    timeout: float = setting(10.0, help="seconds an Acme call may take")
    retries: int = setting(2, help="retries of a failed Acme call")
    verbose: bool = setting(False, help="log every Acme call")
    mode: Literal["fast", "careful"] = setting("fast", help="how hard Acme tries")
    regions: list[str] = setting(["us"], help="Acme regions to ask")
    tags: tuple[str, ...] = setting((), help="tags sent with every call")
    proxy: Url | None = setting(None, help="an HTTP proxy for Acme calls")
    limit: Annotated[int, validate.Range(min=1, max=100)] = setting(10, help="things per page")
    user_agent: str = setting("", help="User-Agent for the Acme API; empty = the default")


@dataclass(frozen=True)
class WeatherySettings:
    """A plugin that took over a setting the server used to have: the old name is its alias."""

    base_url: Url = setting("https://wx.example", help="Weathery API base URL", alias="oldwx_base_url")
    token: Secret | None = setting(None, help="Weathery token", alias="oldwx_token")


class _NoArguments(Schema):
    class Meta:
        unknown = RAISE


class ShowSettings:
    """A class-form tool that answers with what its context holds: settings, state."""

    name = "show_settings"
    description = "Shows its plugin's settings and state."
    Arguments = _NoArguments

    async def call(self, arguments: dict[str, Any], context: Any) -> ToolResult:
        settings = context.settings
        seen = {
            "settings_type": type(settings).__name__,
            "timeout": getattr(settings, "timeout", None),
            "base_url": getattr(settings, "base_url", None),
            "state": dict(vars(context.state)),
        }
        key = getattr(settings, "api_key", None)
        context.log.info("acme settings seen", key=key.reveal() if key else None)  # a careless plugin
        return ToolResult(content=[text_content(repr(seen))], structured=seen)


def tool_of(plugin: str, obj: Any, name: str | None = None) -> RegisteredTool:
    """A class-form tool registered as one of ``plugin``'s tools."""
    if name is not None:
        obj.name = name
    return dataclasses.replace(register_tool(obj, ACME_DISTRIBUTION), plugin=plugin)


def acme_plugin(**fields: Any) -> PluginInfo:
    values: dict[str, Any] = {"settings": AcmeSettings, "tools": ("show_settings",)}
    values.update(fields)
    return PluginInfo("acme", ACME_DISTRIBUTION, "Acme", **values)


def acme_registry(**fields: Any) -> ToolRegistry:
    return ToolRegistry([tool_of("acme", ShowSettings())], plugins=[acme_plugin(**fields)])


def weathery_plugin() -> PluginInfo:
    return PluginInfo("weathery", "weathery 0.3", "Weathery", settings=WeatherySettings)


async def _refuse(context: Any) -> None:
    raise ConnectionError("connection refused by db.acme.test")


async def _remember(context: Any) -> None:
    context.state.started = True


def registry_for(kind: str) -> ToolRegistry:
    """The registries the CLI runner serves: ``acme``, ``weathery`` (acme and an alias) or
    ``failing`` (acme, whose start-up hook ``connect`` fails)."""
    if kind == "failing":
        return acme_registry(startup=(_remember, _refuse))
    if kind == "weathery":
        return ToolRegistry([tool_of("acme", ShowSettings())], plugins=[acme_plugin(), weathery_plugin()])
    return acme_registry()


_refuse.__name__ = "connect"

# ``python -c RUNNER <kind> serve ...``: skywarden's CLI with the plugins of registry_for(kind) as
# the installed ones (discovery replaced), for the tests that need a real process.
RUNNER = """
import sys
from skywarden.server.plugins import registry
from tests.support.plugin_settings_samples import registry_for
registry.discover_tools = lambda paths=None: registry_for(sys.argv[1])
from skywarden.server.cli.main import main
sys.exit(main(sys.argv[2:]))
"""
