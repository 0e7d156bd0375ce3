"""The settings reference of the README: the server's settings, then a table per built-in
plugin that has settings of its own. ``python -m skywarden.server.cli.reference`` prints it;
``./scripts/update-readme-settings`` writes it into README.md."""

from __future__ import annotations

from skywarden.server.plugins.registry import discover_tools
from skywarden.server.plugins.settings import declared_settings
from skywarden.server.settings import PluginSettings, markdown_table, plugin_markdown_table

BUILT_IN = "skywarden"  # the distribution whose plugins the README documents


def built_in_plugins() -> tuple[PluginSettings, ...]:
    """The settings of the plugins Skywarden itself ships (other installed plugins are left out)."""
    plugins = [p for p in discover_tools().plugins if p.distribution.partition(" ")[0] == BUILT_IN]
    return tuple(p for p in declared_settings(plugins) if p.settings)


def settings_reference() -> str:
    parts = [markdown_table()]
    for plugin in built_in_plugins():
        parts.append(f"\nSettings of the built-in plugin `{plugin.name}`:\n\n{plugin_markdown_table(plugin)}")
    return "".join(parts)


if __name__ == "__main__":
    print(settings_reference(), end="")
