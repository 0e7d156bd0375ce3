"""schemathesis against our own OpenAPI document, on a real ``skywarden serve``: once with an API
key (tools, health, /mcp), once with the admin token (keys, stateful: create -> show -> update ->
rotate -> revoke, and metrics). No 5xx, no undocumented status, answers match their schemas.

Every conformance check runs (status codes, content types, response schemas and headers,
missing headers, unsupported methods, ignored authentication, ...), except two, each for a
reason the schema cannot express:
- ``positive_data_acceptance``: a schema-valid key can still be refused for rules no JSON Schema
  states ("expires in the future", "a tool that is loaded"), tool arguments and /mcp messages
  follow rules of the tool and of the MCP revision (a session header once a session is open),
  and OpenAPI cannot say "exactly one of these credentials" (both headers at once are a 400).
  What the document can state it does, and ``test_openapi.py`` holds it to the server: which
  bodies may be left out, and every admin query parameter's bounds;
- ``use_after_free``: DELETE revokes a key, and the revoked record stays readable on purpose
  (status ``revoked``, for the audit trail).

The per-IP limits are off in these runs: schemathesis' authentication probes are wrong
credentials from one address, and after ``auth_failure_limit`` of them the right answer is 429,
not the 401 the probes expect. Every status the request path answers (those limits included)
is held to the document by ``test_openapi.py`` over every operation.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.support.admin import ADMIN_TOKEN
from tests.support.logs import SECRETS
from tests.support.server_process import start_server

pytestmark = pytest.mark.slow

ST = str(Path(sys.executable).parent / "st")
EXCLUDED = "positive_data_acceptance,use_after_free"
RUNS = [
    ("key", r"^/(api/mcp|api/health|mcp)"),
    ("admin", r"^/(api/admin|metrics)"),
]


@pytest.fixture
async def live(tmp_path, fake_nws):
    env = {
        "SKYWARDEN_DATA_DIR": str(tmp_path),
        "SKYWARDEN_ADMIN_TOKEN": ADMIN_TOKEN,
        "SKYWARDEN_WEATHER_BASE_URL": fake_nws.url,
        "SKYWARDEN_RATE_LIMIT": "",
        "SKYWARDEN_AUTH_FAILURE_LIMIT": "",
        "SKYWARDEN_UNAUTHENTICATED_LIMIT": "",
    }
    server = await start_server(env)
    key = await server.create_key(ADMIN_TOKEN, name="schemathesis")
    SECRETS.add(key)
    yield server, key
    await server.stop()


@pytest.mark.parametrize(("who", "paths"), RUNS, ids=[r[0] for r in RUNS])
async def test_the_openapi_document_holds(live, who, paths, tmp_path):
    server, key = live
    header = f"X-API-Key: {key}" if who == "key" else f"Authorization: Bearer {ADMIN_TOKEN}"
    proc = await asyncio.create_subprocess_exec(
        ST,
        "run",
        server.url + "/api/docs/openapi.json",
        "-H",
        header,
        "--include-path-regex",
        paths,
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED,
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "30",
        "--seed",
        "20261126",
        "--report-dir",
        str(tmp_path / "report"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 600)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert ("generated" in text and " 0 found" not in text) or "failures" not in text.split("SUMMARY")[-1]
