"""Malformed REST input: the right status and a problem+json body, never a trace."""

from __future__ import annotations

import pytest


async def problem(resp, status):
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"]
    assert "Traceback" not in str(body)
    return body


async def test_health_is_public_and_versioned(client):
    resp = await client.get("/api/health")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_unknown_tool_404(client):
    body = await problem(await client.post("/api/mcp/tools/nope", json={}), 404)
    assert "nope" in body["detail"]


async def test_unknown_route_404(client):
    await problem(await client.get("/api/nothing"), 404)


async def test_wrong_method_405_with_allow(client):
    resp = await client.put("/api/mcp/tools/get_alerts", json={})
    await problem(resp, 405)
    assert "POST" in resp.headers["Allow"]


@pytest.mark.parametrize(
    ("data", "ctype", "status"),
    [
        ("{not json", "application/json", 400),
        ('{"state": NaN}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        ("state=CA", "application/x-www-form-urlencoded", 415),
        ('{"state":"CA"}', "text/plain", 415),
        (None, None, 400),
    ],
)
async def test_bad_bodies(client, data, ctype, status):
    headers = {"Content-Type": ctype} if ctype else {}
    resp = await client.post("/api/mcp/tools/get_alerts", data=data, headers=headers)
    await problem(resp, status)


async def test_deep_json_400(client):
    deep = "[" * 100 + "]" * 100
    body = await problem(
        await client.post("/api/mcp/tools/get_alerts", data=deep, headers={"Content-Type": "application/json"}), 400
    )
    assert "nesting deeper than 32" in body["detail"]


async def test_very_deep_json_does_not_crash(client):
    deep = "[" * 200_000 + "]" * 200_000
    resp = await client.post("/api/mcp/tools/get_alerts", data=deep, headers={"Content-Type": "application/json"})
    assert resp.status in (400, 413)


async def test_body_too_large_413(make_client, make_settings):
    client = await make_client(make_settings(max_body_bytes="2048"))
    resp = await client.post(
        "/api/mcp/tools/get_alerts", data='{"state":"' + "A" * 5000 + '"}', headers={"Content-Type": "application/json"}
    )
    await problem(resp, 413)


async def test_request_id_is_echoed_or_generated(client):
    resp = await client.get("/api/health", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/api/health", headers={"X-Request-ID": "bad id with spaces\u00e9"})
    assert resp.headers["X-Request-ID"] != "bad id with spaces"
    assert len(resp.headers["X-Request-ID"]) == 32


async def test_unexpected_error_is_500_problem_without_detail(client, monkeypatch):
    from skywarden.server.calls.pipeline import ToolPipeline

    def explode(self, principal):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(ToolPipeline, "visible_tools", explode)
    body = await problem(await client.get("/api/mcp/tools"), 500)
    assert "secret internal detail" not in str(body)
    assert body["request_id"]
