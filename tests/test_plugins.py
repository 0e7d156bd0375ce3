"""The plugin path: discovery through the entry-point group, broken plugins, duplicates."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from skywarden.server.plugins.registry import DuplicateToolError, discover_tools
from tests.support.plugin_samples import fake_distribution


def test_third_party_plugin_is_discovered(tmp_path):
    fake_distribution(tmp_path, "acme-echo", {"echo": "tests.support.plugin_samples:echo"})
    registry = discover_tools(paths=[str(tmp_path)])
    assert registry.names() == ["echo"]
    assert registry.get("echo").distribution == "acme-echo 1.0"


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("tests.no_such_module:tool", "ModuleNotFoundError"),
        ("tests.support.plugin_samples:missing", "AttributeError"),
        ("tests.support.plugin_samples:not_a_tool", "1-128 characters"),
        ("tests.support.plugin_samples:sync_call", "must be an async function"),
    ],
)
def test_broken_plugin_is_skipped_with_a_log_line(tmp_path, target, fragment):
    fake_distribution(tmp_path, "acme-broken", {"broken": target})
    fake_distribution(tmp_path, "acme-echo", {"echo": "tests.support.plugin_samples:echo"})
    with capture_logs() as logs:
        registry = discover_tools(paths=[str(tmp_path)])
    assert registry.names() == ["echo"]
    [line] = [entry for entry in logs if entry["event"] == "plugin skipped"]
    assert line["distribution"] == "acme-broken 1.0"
    assert fragment in line["error"]


def test_duplicate_names_fail_naming_both_distributions(tmp_path):
    fake_distribution(tmp_path, "acme-one", {"echo": "tests.support.plugin_samples:echo"})
    fake_distribution(tmp_path, "acme-two", {"echo": "tests.support.plugin_samples:echo"})
    with pytest.raises(DuplicateToolError) as info:
        discover_tools(paths=[str(tmp_path)])
    assert "acme-one 1.0" in str(info.value) and "acme-two 1.0" in str(info.value)


def test_installed_conformance_plugin_is_loaded():
    """The test-only package under tests/plugins is pip-installed by the test set-up."""
    registry = discover_tools()
    tool = registry.get("test_simple_text")
    assert tool is not None, "install tests/plugins/conformance_tools (scripts/test does)"
    assert tool.distribution.startswith("skywarden-conformance-tools ")


async def test_plugin_tool_is_callable_over_rest(make_client, tmp_path):
    fake_distribution(tmp_path, "acme-echo", {"echo": "tests.support.plugin_samples:echo"})
    client = await make_client(registry=discover_tools(paths=[str(tmp_path)]))
    resp = await client.post("/api/mcp/tools/echo", json={"text": "hello"})
    assert (await resp.json())["content"] == [{"type": "text", "text": "hello"}]


async def test_plugin_that_raises_gives_tool_error_not_500(make_client, tmp_path):
    fake_distribution(tmp_path, "acme-explodes", {"explodes": "tests.support.plugin_samples:explodes"})
    client = await make_client(registry=discover_tools(paths=[str(tmp_path)]))
    with capture_logs() as logs:
        resp = await client.post("/api/mcp/tools/explodes", json={"text": "x"})
    body = await resp.json()
    assert resp.status == 200 and body["isError"] is True
    assert "internal detail" not in body["content"][0]["text"]
    assert any(e["event"] == "tool raised an unexpected error" for e in logs)


def test_cli_duplicate_fails_startup(tmp_path, monkeypatch, capsys):
    from skywarden.server.cli import main as cli

    fake_distribution(tmp_path, "acme-one", {"get_alerts": "tests.support.plugin_samples:fake_alerts"})
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.invalidate_caches()
    code = cli.main(["tools"])
    assert code == 1
    assert "offered by both" in capsys.readouterr().err
