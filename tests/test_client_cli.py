"""``skywarden-client`` end to end: a real process against a real server, exit codes and --json."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from tests.support.admin import ADMIN_TOKEN
from tests.support.logs import SECRETS

pytestmark = pytest.mark.slow  # subprocesses or Node tools: run by CI and ./scripts/test, not -m 'not slow'


async def cli(client, *args: str, key: str | None = None, admin: bool = False) -> tuple[int, str, str]:
    env = {"SKYWARDEN_API_KEY": key if key is not None else client.api_key}
    if admin:
        env["SKYWARDEN_ADMIN_TOKEN"] = ADMIN_TOKEN
    return await run_cli(str(client.make_url("")).rstrip("/"), *args, env=env)


async def run_cli(url: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """skywarden-client against ``url`` with no SKYWARDEN_* variable but those of ``env``."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SKYWARDEN_")},
        "SKYWARDEN_URL": url,
        **(env or {}),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "skywarden.clients.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_health_and_tools(client):
    code, out, _ = await cli(client, "health")
    assert code == 0 and out.startswith("ok")
    code, out, _ = await cli(client, "--json", "tools")
    assert code == 0 and {"get_forecast", "get_alerts"} <= {t["name"] for t in json.loads(out)}
    after = await cli(client, "tools", "--json")
    assert after == (code, out, "")  # --json after the command, as `skywarden keys list --json` takes it


@pytest.mark.parametrize("transport", ["rest", "mcp"])
async def test_call_with_args_parsed_as_json_when_they_parse(client, transport):
    code, out, _ = await cli(
        client,
        "--transport",
        transport,
        "--json",
        "call",
        "get_forecast",
        "--arg",
        "latitude=39.7456",
        "--arg",
        "longitude=-97.0892",
    )
    assert code == 0
    assert json.loads(out)["structuredContent"]["location"] == "Linn, KS"
    code, out, _ = await cli(client, "--transport", transport, "call", "get_alerts", "--args-json", '{"state": "ks"}')
    assert code == 0 and "Winter Weather Advisory" in out


async def test_string_values_stay_strings(client):
    code, out, _ = await cli(client, "--json", "call", "get_alerts", "--arg", "state=KS")
    assert code == 0 and json.loads(out)["structuredContent"]["state"] == "KS"


async def test_exit_codes(client, make_client):
    assert (await cli(client, "call", "get_forecast", "--args-json", '{"latitude": 51.5074, "longitude": -0.1278}'))[
        0
    ] == 1
    code, out, err = await cli(client, "tools", key="skw_live_wrong")
    assert code == 3 and "AuthenticationError" in err
    scoped = await make_client(scopes=["get_alerts"])
    assert (await cli(scoped, "call", "get_forecast", "--args-json", '{"latitude": 1, "longitude": 1}'))[0] == 4
    assert (await cli(client, "call", "nope"))[0] == 5
    code, out, _ = await cli(client, "--json", "call", "get_forecast", "--arg", "latitude=500")
    assert code == 6
    error = json.loads(out)["error"]
    assert error["type"] == "InvalidArguments" and set(error["field_errors"]) == {"latitude", "longitude"}
    assert error["request_id"]


async def test_usage_errors_exit_2(client):
    assert (await cli(client, "call", "get_alerts", "--arg", "no-equals-sign"))[0] == 2
    assert (await cli(client, "call", "get_alerts", "--args-json", "{bad"))[0] == 2
    assert (await cli(client, "call", "get_alerts", "--args-json", "[1]"))[0] == 2
    assert (await cli(client, "frobnicate"))[0] == 2
    assert (await cli(client, "--transport", "carrier-pigeon", "tools"))[0] == 2


async def test_an_empty_api_key_is_refused_before_any_request(client):
    code, _, err = await cli(client, "tools", key="")
    assert code == 2 and "no API key is set" in err
    code, out, _ = await cli(client, "health", key="")  # health needs no key
    assert code == 0 and "ok" in out


async def test_skywarden_url_is_the_base_url(client):
    """A trailing slash is dropped; the /mcp endpoint instead of the base is refused (exit 2) saying so."""
    base = str(client.make_url("")).rstrip("/")
    code, out, _ = await run_cli(base + "//", "health")
    assert code == 0 and out.startswith("ok")
    for wrong in (base + "/mcp", base + "/mcp/"):
        code, out, err = await run_cli(wrong, "--transport", "mcp", "tools", env={"SKYWARDEN_API_KEY": client.api_key})
        assert code == 2 and "SKYWARDEN_URL is the server's base URL" in err and "drop the trailing /mcp" in err
        assert "Traceback" not in err
    code, _, err = await run_cli(base, "--url", base + "/mcp", "health")
    assert code == 2 and "the server URL is the server's base URL" in err


async def test_transport_error_exit_9(client):
    from tests.support.server_process import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYWARDEN_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "skywarden.clients.cli",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "health",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 9 and b"cannot connect" in err


async def test_keys_commands(client):
    code, out, _ = await cli(
        client, "--json", "keys", "create", "--name", "cli key", "--scope", "get_alerts", admin=True
    )
    assert code == 0
    created = json.loads(out)
    SECRETS.add(created["key"])
    code, out, _ = await cli(client, "--json", "keys", "list", admin=True)
    assert created["id"] in {k["id"] for k in json.loads(out)} and created["key"] not in out
    code, out, _ = await cli(client, "keys", "show", created["id"], admin=True)
    assert code == 0 and "cli key" in out
    code, out, _ = await cli(client, "--json", "keys", "rotate", created["id"], "--grace-seconds", "0", admin=True)
    SECRETS.add(json.loads(out)["key"])
    code, out, _ = await cli(client, "keys", "revoke", created["id"], "--reason", "done", admin=True)
    assert code == 0
    assert (await cli(client, "keys", "show", "key_missing", admin=True))[0] == 5
    code, _, err = await cli(client, "keys", "list")  # no admin token: refused before any request
    assert code == 2 and "no admin credential is set" in err
    code, out, _ = await cli(client, "--json", "keys", "create", "--name", "x", "--scope", "nope", admin=True)
    assert code == 6
