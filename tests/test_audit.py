"""The audit trail: exactly one event per request with the right fields, admin actions, redaction, sinks."""

from __future__ import annotations

import asyncio
import errno
import threading
from datetime import timedelta

import orjson
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from skywarden.server import keys
from skywarden.server.appkeys import AUTHENTICATOR, KEY_STORE
from skywarden.server.auth.records import utcnow
from skywarden.server.observability.log_sink import BackgroundSink
from skywarden.server.observability.logging_setup import JsonAuditLogger
from skywarden.server.observability.redaction import (
    _SUSPICIOUS_WORDS,
    REDACTED,
    key_marks,
    looks_secret,
    redact_processor,
)
from skywarden.server.plugins.registry import ToolRegistry, register_tool
from tests.support.admin import create_key
from tests.support.logs import CAPTURED, SECRETS, CaptureStream, drain_logs
from tests.support.mcp_helpers import modern_headers, modern_rpc, open_session, post, rpc, session_headers


def audit_events_for(request_id: str) -> list[dict]:
    return [e for e in drain_logs() if e.get("audit") and e.get("request_id") == request_id and e["event"] == "request"]


async def one_event(resp) -> dict:
    events = audit_events_for(resp.headers["X-Request-ID"])
    assert len(events) == 1, events
    event = events[0]
    assert event["path"].startswith("/") and "?" not in event["path"]
    assert event["client_ip"] == "127.0.0.1"
    assert isinstance(event["latency_ms"], float)
    return event


async def test_allowed_rest_tool_call(client):
    resp = await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"})
    event = await one_event(resp)
    assert event["outcome"] == "allowed" and event["status"] == 200
    assert event["principal"] == "key" and event["key_id"] == client.key_id and event["key_name"] == "test key"
    assert event["tool"] == "get_alerts" and event["tool_error"] is False
    assert event["method"] == "POST" and event["path"] == "/api/mcp/tools/get_alerts"
    assert event["bytes"] > 0


async def test_allowed_mcp_call_names_method_tool_revision_and_session(client):
    session = await open_session(client)
    message = rpc("tools/call", {"name": "get_alerts", "arguments": {"state": "KS"}})
    resp = await post(client, message, session_headers(session, "2025-11-25"))
    event = await one_event(resp)
    assert event["mcp_method"] == "tools/call" and event["tool"] == "get_alerts"
    assert event["protocol_version"] == "2025-11-25"
    assert len(event["session"]) == 16 and session not in str(event)


async def test_stateless_mcp_call(client):
    message = modern_rpc("tools/list")
    resp = await post(client, message, modern_headers(message))
    event = await one_event(resp)
    assert event["mcp_method"] == "tools/list" and event["protocol_version"] == "2026-07-28"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"X-API-Key": "nonsense"}, "malformed"),
        ({"X-API-Key": "skw_live_" + "A" * 50}, "malformed"),
    ],
)
async def test_denied_missing_or_malformed(client, headers, reason):
    resp = await client.anonymous.get("/api/mcp/tools", headers=headers)
    event = await one_event(resp)
    assert event["outcome"] == "denied" and event["status"] == 401 and event["reason"] == reason
    assert event["principal"] == "anonymous"


async def test_denied_unknown_revoked_and_scope(client, make_client):
    from skywarden.server.keys import generate_key

    resp = await client.anonymous.get("/api/mcp/tools", headers={"X-API-Key": generate_key()})
    assert (await one_event(resp))["reason"] == "unknown"
    revoked = await create_key(client.admin, name="gone")
    await client.admin.delete(f"/api/admin/keys/{revoked['id']}")
    resp = await client.anonymous.get("/api/mcp/tools", headers={"X-API-Key": revoked["key"]})
    assert (await one_event(resp))["reason"] == "revoked"

    scoped = await make_client(scopes=["get_alerts"])
    resp = await scoped.post("/api/mcp/tools/get_forecast", json={"latitude": 1, "longitude": 1})
    event = await one_event(resp)
    assert event["outcome"] == "denied" and event["reason"] == "scope" and event["status"] == 403


async def test_errors(client):
    resp = await client.post("/api/mcp/tools/nope", json={})
    event = await one_event(resp)
    assert event["outcome"] == "error" and event["status"] == 404
    resp = await client.post("/api/mcp/tools/get_alerts", json={"state": 1})
    assert (await one_event(resp))["status"] == 422


async def test_key_in_query_is_audited_without_the_query(client):
    resp = await client.anonymous.get(f"/api/mcp/tools?api_key={client.api_key}")
    event = await one_event(resp)
    assert event["reason"] == "key_in_query" and event["path"] == "/api/mcp/tools"


async def test_admin_actions_are_audited_with_before_and_after(client):
    key = await create_key(client.admin, name="audited")
    await client.admin.patch(f"/api/admin/keys/{key['id']}", json={"name": "renamed", "scopes": ["get_alerts"]})
    await client.admin.delete(f"/api/admin/keys/{key['id']}", json={"reason": "done"})
    actions = [e for e in drain_logs() if e.get("event") == "admin action" and e.get("key_id") == key["id"]]
    assert [a["action"] for a in actions] == ["key.create", "key.update", "key.revoke"]
    update = actions[1]
    assert update["before"]["name"] == "audited" and update["after"]["name"] == "renamed"
    assert {"name", "scopes"} <= set(update["changed"])
    assert update["actor"] == "admin" and update["request_id"]
    for action in actions:
        assert key["key"] not in str(action)


def test_redaction_removes_keys_tokens_and_authorization_everywhere():
    key = "skw_live_" + "a" * 44 + "b" * 6
    event = {
        "event": f"upstream said {key}",
        "headers": {"Authorization": "Bearer abc.def", "X-API-Key": key, "Accept": "x"},
        "error": f"Traceback ... Authorization: Bearer sometoken {key}",
        "admin_token": "whatever-it-is",
        "nested": [{"text": key}],
    }
    out = redact_processor(None, "info", event)
    text = str(out)
    assert key not in text and "abc.def" not in text and "sometoken" not in text and "whatever-it-is" not in text
    assert out["headers"]["Accept"] == "x" and out["headers"]["Authorization"] == REDACTED


@pytest.mark.parametrize("word", _SUSPICIOUS_WORDS)
def test_every_suspicious_word_sends_a_line_through_redaction(word):
    """looks_secret spells the words out as one expression; this holds it to the list."""
    line = '{"path":"/api/mcp/tools/get_forecast","status":200}'
    assert not looks_secret(line)
    for shown in (word, word.upper(), word.title()):
        assert looks_secret(line.replace("get_forecast", f"x{shown}y"))


def audit_line(monkeypatch, **fields) -> tuple[str, int]:
    """The audit line ``fields`` make, and how many times they went through full redaction."""
    from skywarden.server.observability import logging_setup

    sink, walks = CaptureStream(), []
    monkeypatch.setattr(logging_setup, "redact_processor", lambda *a: walks.append(1) or redact_processor(*a))
    JsonAuditLogger(sink, 20, "vm:1").info("request", **fields)  # type: ignore[arg-type]
    return sink.lines[0], len(walks)


def test_a_line_naming_its_key_by_prefix_is_written_without_a_redaction_walk(monkeypatch):
    key = keys.generate_key()
    fields = {"key_id": "key_1", "key_prefix": keys.display_prefix(key), "path": "/mcp", "status": 200}
    line, walks = audit_line(monkeypatch, **fields)
    assert walks == 0 and keys.display_prefix(key) in line


@pytest.mark.parametrize("where", ["path", "key_name", "tool", "reason"])
@pytest.mark.parametrize("shape", ["as is", "glued", "second prefix"])
def test_a_key_beside_its_prefix_is_still_redacted(monkeypatch, where, shape):
    key = keys.generate_key()
    value = {
        "as is": key,
        "glued": f"x{key}y",
        "second prefix": keys.display_prefix(key) + "/" + key,
    }[shape]
    line, walks = audit_line(monkeypatch, key_prefix=keys.display_prefix(key), **{where: value})
    assert walks == 1 and key not in line


@given(before=st.text(max_size=40), after=st.text(max_size=40), copies=st.integers(0, 3))
def test_any_line_with_a_key_besides_its_prefixes_looks_secret(before, after, copies):
    key = keys.generate_key()
    prefix = keys.display_prefix(key)
    line = orjson.dumps({"key_prefix": prefix, "a": before + prefix * copies, "b": key + after}).decode()
    assert looks_secret(line, key_marks(prefix))


def test_a_prefix_that_is_itself_a_key_accounts_for_nothing():
    key = keys.generate_key()
    assert key_marks(key) == 0 and key_marks(None) == 0 and key_marks(5) == 0
    assert key_marks(keys.display_prefix(key)) == 1
    assert looks_secret(f'{{"key_prefix":"{key}"}}', key_marks(key))


async def test_exception_text_with_a_key_is_redacted(client, monkeypatch):
    from skywarden.server.calls.pipeline import ToolPipeline

    def explode(self, principal):
        raise RuntimeError(f"boom {client.api_key}")

    monkeypatch.setattr(ToolPipeline, "visible_tools", explode)
    resp = await client.get("/api/mcp/tools")
    assert resp.status == 500
    errors = [
        e
        for e in drain_logs()
        if e.get("event") == "unhandled error" and e.get("request_id") == resp.headers["X-Request-ID"]
    ]
    assert errors and "boom" in errors[0]["exception"] and client.api_key not in errors[0]["exception"]


class _FailingStream:
    def __init__(self):
        self.calls = 0

    def write(self, text):
        self.calls += 1
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        return None


class _BlockingStream:
    def __init__(self):
        self.release = threading.Event()
        self.lines = []

    def write(self, text):
        self.release.wait(30)
        self.lines.append(text)

    def flush(self):
        return None


def test_sink_failure_is_reported_once_and_writes_never_raise(capfd):
    stream = _FailingStream()
    sink = BackgroundSink(stream=stream)
    for _ in range(3):
        for _ in range(5):
            sink.write("line\n")
        sink.drain()
    sink.close()
    assert stream.calls == sink.failures >= 3
    err = capfd.readouterr().err
    assert err.count("log sink stream failed") == 1 and "No space left" in err


def test_removed_log_file_is_recreated(tmp_path):
    path = tmp_path / "audit.log"
    sink = BackgroundSink(path=str(path))
    sink.write("one\n")
    sink.drain()
    path.unlink()  # external rotation or an operator mistake
    sink.write("two\n")
    sink.drain()
    sink.close()
    assert path.read_text() == "two\n"


def test_rotated_log_file_is_reopened(tmp_path):
    path = tmp_path / "app.log"
    sink = BackgroundSink(path=str(path))
    sink.write("before\n")
    sink.drain()
    path.rename(tmp_path / "app.log.1")
    sink.write("after\n")
    sink.drain()
    sink.close()
    assert (tmp_path / "app.log.1").read_text() == "before\n" and path.read_text() == "after\n"


async def test_requests_succeed_while_the_sink_is_stuck(client, monkeypatch):
    from skywarden.server.observability import logging_setup

    blocking = _BlockingStream()
    stuck = BackgroundSink(stream=blocking)
    monkeypatch.setattr(
        logging_setup,
        "_audit_logger",
        structlog.wrap_logger(structlog.WriteLogger(stuck), processors=[structlog.processors.JSONRenderer()]),
    )
    try:
        for _ in range(20):
            assert (await client.get("/api/mcp/tools")).status == 200
    finally:
        blocking.release.set()
        stuck.drain()
        stuck.close()
    assert "".join(blocking.lines).count('"event": "request"') == 20


def test_full_queue_drops_and_counts():
    blocking = _BlockingStream()
    sink = BackgroundSink(stream=blocking, max_queued=3, interval=60)  # the writer stays asleep
    for _ in range(10):
        sink.write("x\n")
    assert sink.dropped == 7
    blocking.release.set()
    sink.close()


def test_capture_is_live():
    structlog.get_logger("skywarden.test").info("capture check")  # its own line, whatever ran before
    drain_logs()
    assert CAPTURED.lines


def test_configured_admin_token_is_redacted_even_when_it_is_not_key_shaped(make_settings):
    from skywarden.server.auth.credentials import prepare_credentials
    from skywarden.server.observability.redaction import redact_text

    token = "plain-admin-token-that-looks-like-nothing-0123456789"
    prepare_credentials(make_settings(admin_token=token))
    assert token not in redact_text(f"oops {token} leaked")


class _Collect:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        return None


def test_an_event_that_cannot_be_encoded_still_leaves_a_line():
    import json

    from skywarden.server.observability.logging_setup import JsonAuditLogger

    stream = _Collect()
    sink = BackgroundSink(stream=stream)
    logger = JsonAuditLogger(sink, 20, "")
    loop: dict = {}
    loop["self"] = loop
    logger.info("request", audit=True, looped=loop)
    logger.info("request", audit=True, text="lone \udc80 surrogate")
    sink.drain()
    sink.close()
    first, second = (json.loads(line) for line in stream.text.splitlines())
    assert first["event"] == "request" and first["unwritable_fields"] is True and first["timestamp"].endswith("Z")
    assert second["text"] == "lone \udc80 surrogate"


def test_utc_timestamps_match_the_iso_form_structlog_writes():
    import datetime
    import random

    from skywarden.server.observability.logging_setup import UtcClock

    clock = UtcClock()
    draw = random.Random(13)
    moments = [0.0, 1_764_684_000.000001, 1_764_684_000.999999, 1_764_684_000.9999996, 1_764_684_001.5]
    moments += [draw.uniform(1e9, 4e9) for _ in range(3000)]
    for now in moments:
        expected = datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert clock.format(now) == expected


def test_generated_request_ids_are_random_hex_unique_across_batches_and_forks():
    import os

    from skywarden.server.http.context import _random_ids, _RandomIds

    ids = _RandomIds()
    drawn = [ids.next() for _ in range(3 * _RandomIds.BATCH + 5)]  # across several batches
    assert len(set(drawn)) == len(drawn)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in drawn)
    _random_ids.next()  # the shared pool holds a batch that a forked child must not repeat
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out without running the parent's clean-up
        os.write(write, _random_ids.next().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32 and child != _random_ids.next()


def _samples():
    from tests.support import plugin_samples

    return ToolRegistry([register_tool(plugin_samples.echo, "samples"), register_tool(plugin_samples.waits, "samples")])


async def _call(client, door: str, tool: str, arguments: dict, key: str):
    headers = {"X-API-Key": key}
    if door == "rest":
        return await client.anonymous.post(f"/api/mcp/tools/{tool}", json=arguments, headers=headers)
    message = modern_rpc("tools/call", {"name": tool, "arguments": arguments})
    return await client.anonymous.post("/mcp", json=message, headers={**modern_headers(message), **headers})


async def _revoke(client, key):
    assert (await client.admin.delete(f"/api/admin/keys/{client.key_id}")).status == 204
    return key


async def _expire(client, key):
    await client.server.app[KEY_STORE].update(client.key_id, {"expires_at": utcnow() - timedelta(seconds=1)})
    return key


async def _disable(client, key):
    assert (await client.admin.patch(f"/api/admin/keys/{client.key_id}", json={"disabled": True})).status == 200
    return key


async def _rotate_out(client, key):
    resp = await client.admin.post(f"/api/admin/keys/{client.key_id}/rotate", json={"grace_seconds": 0})
    SECRETS.add((await resp.json())["key"])
    return key  # the old key, refused from now on


async def _expire_while_cached(client, key):
    future = utcnow() + timedelta(hours=1)
    resp = await client.admin.patch(f"/api/admin/keys/{client.key_id}", json={"expires_at": future.isoformat()})
    assert resp.status == 200
    assert (await client.anonymous.get("/api/mcp/tools", headers={"X-API-Key": key})).status == 200
    client.server.app[AUTHENTICATOR].now = lambda: future + timedelta(seconds=1)
    return key


def _once_used(step):
    """``step`` on a key the server has verified and cached already."""

    async def used_then(client, key):
        assert (await client.anonymous.get("/api/mcp/tools", headers={"X-API-Key": key})).status == 200
        return await step(client, key)

    return used_then


async def _spend(client, key, door):
    assert (await _call(client, door, "echo", {"text": "x"}, key)).status == 200
    return key


async def _hold_the_slot(client, key, door):
    from tests.support import plugin_samples

    plugin_samples.SIGNALS.update(started=asyncio.Event(), cancelled=asyncio.Event())
    client.held = asyncio.create_task(_call(client, door, "waits", {"text": "x"}, key))
    await asyncio.wait_for(plugin_samples.SIGNALS["started"].wait(), 10)
    return key


# kind -> (settings, key scopes, what happens first, tool, arguments, status at REST, at /mcp, reason)
KNOWN_KEY_REFUSALS = {
    "revoked": ({}, ["*"], _revoke, "echo", {"text": "x"}, 401, 401, "revoked"),
    "expired": ({}, ["*"], _expire, "echo", {"text": "x"}, 401, 401, "expired"),
    "disabled": ({}, ["*"], _disable, "echo", {"text": "x"}, 401, 401, "disabled"),
    "rotated out of its grace": ({}, ["*"], _rotate_out, "echo", {"text": "x"}, 401, 401, "rotated"),
    "expired while cached": ({}, ["*"], _expire_while_cached, "echo", {"text": "x"}, 401, 401, "expired"),
    "revoked while cached": ({}, ["*"], _once_used(_revoke), "echo", {"text": "x"}, 401, 401, "revoked"),
    "tool outside its scopes": ({}, ["waits"], None, "echo", {"text": "x"}, 403, 403, "scope"),
    "over its rate limit": ({"rate_limit": "1/minute"}, ["*"], _spend, "echo", {"text": "x"}, 429, 429, "rate_limited"),
    "too many calls at once": (
        {"max_concurrent_calls": "1"},
        ["*"],
        _hold_the_slot,
        "waits",
        {"text": "x"},
        429,
        429,
        "rate_limited",
    ),
    "invalid arguments": ({}, ["*"], None, "echo", {"text": 5}, 422, 200, None),
}


@pytest.mark.parametrize("door", ["rest", "mcp"])
@pytest.mark.parametrize("kind", list(KNOWN_KEY_REFUSALS))
async def test_every_refusal_of_a_known_key_names_it_by_id_and_prefix(make_client, make_settings, door, kind):
    """The leaked-key runbook finds a key's denials by ``key_id``; the prefix is what the leaked
    text shows. Both are on the audit event and the recent-denial record of every refusal of a
    key the store knows, at both doors; a rotated-out key is named by its own (old) prefix."""
    settings, scopes, before, tool, arguments, rest_status, mcp_status, reason = KNOWN_KEY_REFUSALS[kind]
    client = await make_client(make_settings(**settings), scopes=scopes, registry=_samples())
    key = client.api_key
    if before is not None:
        key = await (before(client, key, door) if before in (_spend, _hold_the_slot) else before(client, key))
    resp = await _call(client, door, tool, arguments, key)
    if getattr(client, "held", None):
        client.held.cancel()
    assert resp.status == (rest_status if door == "rest" else mcp_status), await resp.text()
    event = await one_event(resp)
    assert event["key_id"] == client.key_id and event["key_prefix"] == keys.display_prefix(key), event
    assert event.get("reason") == reason
    if event["outcome"] == "denied":
        denial = (await (await client.admin.get("/api/admin/denials")).json())["denials"][0]
        assert denial["key_id"] == client.key_id and denial["key_prefix"] == keys.display_prefix(key), denial
        assert denial["reason"] == reason and denial["status"] == resp.status
        # The runbook's filter, as docs/operations.md writes it, finds this refusal.
        found = [e for e in drain_logs() if e.get("outcome") == "denied" and e.get("key_id") == client.key_id]
        assert any(e["request_id"] == resp.headers["X-Request-ID"] and e["reason"] == reason for e in found)
    assert key not in str(event)


@pytest.mark.parametrize("door", ["rest", "mcp"])
async def test_a_refused_unknown_key_is_named_by_nothing_but_the_prefix_it_showed(client, door):
    unknown = keys.generate_key("live")
    SECRETS.add(unknown)
    for presented, prefix in ((unknown, keys.display_prefix(unknown)), ("not-a-key", None)):
        resp = await _call(client, door, "get_alerts", {"state": "KS"}, presented)
        assert resp.status == 401
        event = await one_event(resp)
        assert "key_id" not in event and "key_name" not in event and event.get("key_prefix") == prefix
        denial = (await (await client.admin.get("/api/admin/denials")).json())["denials"][0]
        assert "key_id" not in denial and denial.get("key_prefix") == prefix


async def test_admin_actions_name_the_key_by_id_and_prefix(client):
    resp = await client.admin.post(f"/api/admin/keys/{client.key_id}/rotate", json={"grace_seconds": 60})
    new = (await resp.json())["key"]
    SECRETS.add(new)
    assert (await client.admin.delete(f"/api/admin/keys/{client.key_id}")).status == 204
    actions = [e for e in drain_logs() if e.get("event") == "admin action" and e.get("key_id") == client.key_id]
    assert [a["action"] for a in actions] == ["key.create", "key.rotate", "key.revoke"]
    assert [a["key_prefix"] for a in actions] == [keys.display_prefix(client.api_key)] + [keys.display_prefix(new)] * 2


# Where a key can be refused before the key door decides: the admin door and /metrics (in either
# header), the URL (400), beside a second credential (400). (method, path, headers, query, status)
def _at_admin(key):
    return "GET", "/api/admin/keys", {"Authorization": f"Bearer {key}"}, None, 401


def _at_admin_as_api_key(key):
    return "GET", "/api/admin/usage", {"X-API-Key": key}, None, 401


def _at_metrics(key):
    return "GET", "/metrics", {"Authorization": f"Bearer {key}"}, None, 401


def _at_metrics_as_api_key(key):
    return "GET", "/metrics", {"X-API-Key": key}, None, 401


def _in_the_url(key):
    return "GET", "/api/mcp/tools", {}, {"api_key": key}, 400


def _in_the_url_under_any_name(key):
    return "POST", "/mcp", {}, {"q": f"x {key}"}, 400


def _beside_a_bearer_token(key):
    return "GET", "/api/mcp/tools", {"X-API-Key": key, "Authorization": "Bearer something"}, None, 400


def _twice(key):
    return "GET", "/api/mcp/tools", [("X-API-Key", key), ("X-API-Key", key)], None, 400


def _beside_itself_at_admin(key):
    return "GET", "/api/admin/keys", {"X-API-Key": "x", "Authorization": f"Bearer {key}"}, None, 400


OTHER_DOORS = [
    _at_admin,
    _at_admin_as_api_key,
    _at_metrics,
    _at_metrics_as_api_key,
    _in_the_url,
    _in_the_url_under_any_name,
    _beside_a_bearer_token,
    _twice,
    _beside_itself_at_admin,
]


async def _valid(client, key):
    return key


@pytest.mark.parametrize("place", OTHER_DOORS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize(
    "state",
    [_valid, _once_used(_valid), _revoke, _once_used(_revoke), _disable, _rotate_out],
    ids=["valid", "valid and cached", "revoked", "revoked while cached", "disabled", "rotated out"],
)
async def test_a_known_key_refused_at_any_door_is_named_by_id_and_prefix(make_client, place, state):
    """A key sent where no key opens (the admin door, /metrics), in the URL or beside a second
    credential is still named as every event about a key names it: the leaked-key runbook finds it."""
    client = await make_client()
    key = await state(client, client.api_key)
    method, path, headers, query, status = place(key)
    resp = await client.anonymous.request(method, path, headers=headers, params=query, json={})
    assert resp.status == status, await resp.text()
    event = await one_event(resp)
    assert event["key_id"] == client.key_id and event["key_prefix"] == keys.display_prefix(key), event
    assert key not in str(event)
    if status == 401:
        denial = (await (await client.admin.get("/api/admin/denials")).json())["denials"][0]
        assert denial["key_id"] == client.key_id and denial["key_prefix"] == keys.display_prefix(key), denial


@pytest.mark.parametrize("place", OTHER_DOORS, ids=lambda f: f.__name__.strip("_"))
async def test_an_unknown_key_refused_at_any_door_is_named_by_its_prefix_only(client, place):
    unknown = keys.generate_key("live")
    SECRETS.add(unknown)
    method, path, headers, query, status = place(unknown)
    resp = await client.anonymous.request(method, path, headers=headers, params=query, json={})
    assert resp.status == status
    event = await one_event(resp)
    assert "key_id" not in event and event["key_prefix"] == keys.display_prefix(unknown)


async def test_the_admin_token_refused_as_a_key_is_never_named(client):
    admin_shaped = keys.generate_key("admin")
    SECRETS.add(admin_shaped)
    resp = await client.anonymous.get("/metrics", headers={"X-API-Key": admin_shaped})
    assert resp.status == 401
    event = await one_event(resp)
    assert "key_prefix" not in event and "key_id" not in event
