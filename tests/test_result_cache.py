"""Kept results: a ``cache_ttl`` (or ``cache_results``) tool's result answers identical calls for
as long as every upstream answer it was made from stays fresh, and never longer (nor longer than
its ``cache_ttl``); refusals still come first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from marshmallow import Schema, fields
from structlog.testing import capture_logs

from skywarden.server.calls.pipeline import ToolPipeline
from skywarden.server.plugins.http_client import Upstream
from skywarden.server.plugins.registry import InvalidToolError, ToolRegistry, register_tool, registry_of
from skywarden.server.principal import Principal
from skywarden.server.ttlcache import TTLCache
from skywarden.tools import Context, Url, tool
from skywarden.tools.contract import ToolError, ToolResult, text_content
from skywarden.tools.http import UpstreamError
from skywarden.tools.weather import WeatherSettings, get_alerts, get_forecast
from skywarden.tools.weather.nws import CACHE_TTL, SERVICE
from tests.support.admin import create_key
from tests.support.clock import Clock
from tests.support.mcp_helpers import modern_headers, modern_rpc, open_session, post, rpc, session_headers
from tests.support.pipelines import pipeline_of

CALLER = Principal("key", "key_kept", "kept", frozenset({"*"}))
POINT = {"latitude": 39.7456, "longitude": -97.0892}
POINTS_PATH = "/points/39.7456,-97.0892"
FORECAST_PATH = "/gridpoints/TOP/32,81/forecast"


def upstream_paths(fake_nws) -> list[str]:
    return [r.path for r in fake_nws.requests]


@pytest.fixture
async def weather(fake_nws):
    """A pipeline with the weather tools, its upstream cache and kept results on one hand-moved clock."""
    clock = Clock()
    upstream = Upstream("test", 5, 1 << 20, TTLCache(64, clock=clock))
    await upstream.open()
    registry = registry_of([get_forecast, get_alerts], "t")
    http = upstream.for_plugin("weather", user_agent="test", service=SERVICE, trusted_origins=[fake_nws.url])
    settings = WeatherSettings(base_url=Url(fake_nws.url))
    pipeline = pipeline_of(registry, http, dict.fromkeys(registry.names(), settings), results=TTLCache(8, clock))
    pipeline.clock = clock
    yield pipeline
    await upstream.close()


async def test_identical_calls_share_one_result_while_its_answers_are_fresh(weather, fake_nws):
    first = await weather.call("get_alerts", {"state": "KS"}, CALLER)
    again = await weather.call("get_alerts", {"state": "KS"}, CALLER)
    assert again is first and not first.result.is_error
    assert upstream_paths(fake_nws) == ["/alerts/active/area/KS"]
    weather.clock.now += 31  # the KS answer says max-age=30
    renewed = await weather.call("get_alerts", {"state": "KS"}, CALLER)
    assert renewed is not first
    assert upstream_paths(fake_nws) == ["/alerts/active/area/KS"] * 2


async def test_a_result_lives_only_as_long_as_the_first_of_its_answers_to_expire(weather, fake_nws):
    fake_nws.routes[FORECAST_PATH].headers = {"Cache-Control": "max-age=60"}  # points: max-age=300
    first = await weather.call("get_forecast", POINT, CALLER)
    weather.clock.now += 59
    assert await weather.call("get_forecast", POINT, CALLER) is first
    weather.clock.now += 2
    assert await weather.call("get_forecast", POINT, CALLER) is not first
    assert upstream_paths(fake_nws) == [POINTS_PATH, FORECAST_PATH, FORECAST_PATH]  # the points answer stayed fresh


async def test_a_weather_result_is_kept_for_its_cache_ttl_at_most(weather, fake_nws):
    fake_nws.routes["/alerts/active/area/KS"].headers = {"Cache-Control": "max-age=3600"}
    first = await weather.call("get_alerts", {"state": "KS"}, CALLER)
    weather.clock.now += CACHE_TTL - 1
    assert await weather.call("get_alerts", {"state": "KS"}, CALLER) is first
    weather.clock.now += 2
    again = await weather.call("get_alerts", {"state": "KS"}, CALLER)
    assert again is not first and again.result == first.result
    assert upstream_paths(fake_nws) == ["/alerts/active/area/KS"]  # made again from the answer NWS lets us keep


@pytest.mark.parametrize("cache_control", ["no-cache", "no-store", "private, max-age=60", "max-age=0", ""])
async def test_a_result_made_from_an_answer_that_may_not_be_cached_is_not_kept(weather, fake_nws, cache_control):
    fake_nws.routes["/alerts/active/area/KS"].headers = {"Cache-Control": cache_control}
    for _ in range(2):
        outcome = await weather.call("get_alerts", {"state": "KS"}, CALLER)
        assert not outcome.result.is_error
    assert upstream_paths(fake_nws) == ["/alerts/active/area/KS"] * 2
    assert len(weather.results) == 0


async def test_an_error_result_is_never_kept(weather, fake_nws):
    for _ in range(2):
        outcome = await weather.call("get_forecast", {"latitude": 51.5074, "longitude": -0.1278}, CALLER)
        assert outcome.result.is_error
    assert len(weather.results) == 0


async def test_argument_sets_that_validate_alike_share_one_kept_result(weather, fake_nws):
    first = await weather.call("get_alerts", {"state": "KS"}, CALLER)
    for state in ("ks", " KS", "KS ", "kS", "Ks", "  ks\t"):
        assert await weather.call("get_alerts", {"state": state}, CALLER) is first
    assert len(weather.results) == 1 and upstream_paths(fake_nws) == ["/alerts/active/area/KS"]


async def test_the_kept_results_are_bounded_least_recently_used_first_out(weather, fake_nws):
    states = ("KS", "MO", "CA", "NY", "OK", "NE", "IA", "CO", "TX", "AR")
    for state in states:
        fake_nws.routes[f"/alerts/active/area/{state}"] = fake_nws.routes["/alerts/active/area/KS"]
    outcomes = {state: await weather.call("get_alerts", {"state": state}, CALLER) for state in states}
    assert not any(o.result.is_error for o in outcomes.values())
    assert len(weather.results) == weather.results.max_entries == 8
    assert await weather.call("get_alerts", {"state": "AR"}, CALLER) is outcomes["AR"]
    assert await weather.call("get_alerts", {"state": "KS"}, CALLER) is not outcomes["KS"]  # the first went out


def make_tool(call, name: str = "kept", cache_results: Any = True, pure_arguments: Any = True):
    class Args(Schema):
        n = fields.Integer(load_default=0)

    class Tool:
        description = "kept-result test"
        Arguments = Args

        async def call(self, arguments: dict, context) -> ToolResult:
            return await call(arguments, context)

    Tool.name = name
    Tool.cache_results = cache_results
    Tool.pure_arguments = pure_arguments
    return Tool()


def pipeline_for(tool, upstream: Upstream, clock: Clock, entries: int = 8) -> ToolPipeline:
    registry = ToolRegistry([register_tool(tool, "t")])
    return pipeline_of(registry, upstream, results=TTLCache(entries, clock))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def primed(clock) -> Upstream:
    """An upstream client (never opened: anything not in its cache fails) with two cached answers."""
    upstream = Upstream("test", 5, 1 << 20, TTLCache(16, clock=clock))
    upstream.cache.put("application/json http://up/short", {"v": 1}, 10)
    upstream.cache.put("application/json http://up/long", {"v": 2}, 50)
    return upstream


async def test_answers_used_by_tasks_the_tool_starts_count_too(primed, clock):
    runs = []

    async def call(arguments, context):
        runs.append(1)
        got = await asyncio.gather(
            context.upstream.get_json("http://up/long", service="Up"),
            context.upstream.get_json("http://up/short", service="Up"),
        )
        return ToolResult(content=[text_content(str(got))])

    pipeline = pipeline_for(make_tool(call), primed, clock)
    await pipeline.call("kept", {}, CALLER)
    clock.now += 9
    await pipeline.call("kept", {}, CALLER)
    assert len(runs) == 1
    clock.now += 2  # past the short answer's expiry, well before the long one's
    await pipeline.call("kept", {}, CALLER)
    assert len(runs) == 2


async def test_a_result_that_consulted_no_upstream_is_not_kept(primed, clock):
    runs = []

    async def call(arguments, context):
        runs.append(1)
        return ToolResult(content=[text_content("made of nothing fetched")])

    pipeline = pipeline_for(make_tool(call), primed, clock)
    for _ in range(2):
        await pipeline.call("kept", {}, CALLER)
    assert len(runs) == 2


async def test_a_failed_upstream_request_makes_the_result_stale_even_when_the_tool_recovers(primed, clock):
    runs = []

    async def call(arguments, context):
        runs.append(1)
        fresh = await context.upstream.get_json("http://up/long", service="Up")
        try:
            await context.upstream.get_json("http://up/not-cached", service="Up")  # not opened: fails
        except UpstreamError:
            pass
        return ToolResult(content=[text_content(str(fresh))])

    pipeline = pipeline_for(make_tool(call), primed, clock)
    for _ in range(2):
        outcome = await pipeline.call("kept", {}, CALLER)
        assert not outcome.result.is_error
    assert len(runs) == 2


async def test_a_failure_after_fresh_answers_is_not_kept(primed, clock):
    runs = []

    async def call(arguments, context):
        runs.append(1)
        await context.upstream.get_json("http://up/long", service="Up")
        raise ToolError("nothing to say about that")

    pipeline = pipeline_for(make_tool(call), primed, clock)
    for _ in range(2):
        assert (await pipeline.call("kept", {}, CALLER)).result.is_error
    assert len(runs) == 2


async def test_a_derive_that_refuses_the_answer_makes_the_result_stale(primed, clock):
    def refuse(document):
        raise ToolError("not the shape expected")

    async def call(arguments, context):
        try:
            return await context.upstream.get_json("http://up/long", service="Up", derive=refuse)
        except ToolError:
            return ToolResult(content=[text_content("fallback")])

    pipeline = pipeline_for(make_tool(call), primed, clock)
    await pipeline.call("kept", {}, CALLER)
    assert len(pipeline.results) == 0


async def test_without_cache_results_or_with_no_room_every_call_runs(primed, clock):
    runs = []

    async def call(arguments, context):
        runs.append(1)
        return ToolResult(content=[text_content(str(await context.upstream.get_json("http://up/long", service="Up")))])

    plain = pipeline_for(make_tool(call, cache_results=False), primed, clock)
    off = pipeline_for(make_tool(call), primed, clock, entries=0)
    for pipeline in (plain, off):
        for _ in range(2):
            await pipeline.call("kept", {}, CALLER)
    assert len(runs) == 4


async def test_each_door_shape_is_encoded_once_per_kept_result(primed, clock):
    async def call(arguments, context):
        return ToolResult(content=[text_content(str(await context.upstream.get_json("http://up/long", service="Up")))])

    pipeline = pipeline_for(make_tool(call), primed, clock)
    built = []

    def shape(result):
        built.append(result)
        return {"text": result.content[0]["text"]}

    first = [(await pipeline.call("kept", {}, CALLER)).encoded("test", shape) for _ in range(3)]
    assert first[0] == first[1] == first[2] == b'{"text":"{\'v\': 2}"}'
    assert len(built) == 1


@pytest.mark.parametrize(
    ("cache_results", "pure_arguments", "fragment"),
    [
        (True, False, "cache_results needs pure_arguments"),
        ("yes", True, "cache_results must be True or False"),
        (1, True, "cache_results must be True or False"),
    ],
)
def test_the_contract_refuses_a_malformed_declaration(cache_results, pure_arguments, fragment):
    async def call(arguments, context):
        return ToolResult(content=[])

    with pytest.raises(InvalidToolError, match=fragment):
        register_tool(make_tool(call, cache_results=cache_results, pure_arguments=pure_arguments), "t")


# Through the doors of a running server.


async def test_a_kept_result_is_shaped_for_each_door_and_revision(client, fake_nws):
    rest = await client.post("/api/mcp/tools/get_forecast", json=POINT)
    assert rest.status == 200
    rest_body = await rest.json()
    call = modern_rpc("tools/call", {"name": "get_forecast", "arguments": POINT})
    modern = await (await post(client, call, modern_headers(call))).json()
    answers = {}
    for version in ("2025-03-26", "2025-06-18", "2025-11-25"):
        session = await open_session(client, version)
        message = rpc("tools/call", {"name": "get_forecast", "arguments": POINT})
        answers[version] = await (await post(client, message, session_headers(session, version))).json()
    assert upstream_paths(fake_nws) == [POINTS_PATH, FORECAST_PATH]  # one tool run served every door

    assert "resultType" not in rest_body and rest_body["structuredContent"]["periods"]
    assert modern["id"] == call["id"] and modern["result"]["resultType"] == "complete"
    assert modern["result"]["structuredContent"] == rest_body["structuredContent"]
    assert "structuredContent" not in answers["2025-03-26"]["result"]
    for version in ("2025-06-18", "2025-11-25"):
        assert answers[version]["result"]["structuredContent"] == rest_body["structuredContent"]
    for version, answer in answers.items():
        assert "resultType" not in answer["result"] and "_meta" not in answer["result"], version
        assert answer["result"]["content"] == rest_body["content"]


async def test_a_kept_result_still_needs_the_scope_and_the_budget(make_client, make_settings, fake_nws):
    client = await make_client(make_settings(rate_limit="3/minute"))
    assert (await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"})).status == 200
    narrow = await create_key(client.admin, scopes=["get_forecast"])
    refused = await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"}, headers={"X-API-Key": narrow["key"]})
    assert refused.status == 403
    statuses = [(await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"})).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert upstream_paths(fake_nws) == ["/alerts/active/area/KS"]


async def test_repeated_rest_answers_are_byte_identical(client):
    bodies = {await (await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"})).read() for _ in range(3)}
    assert len(bodies) == 1


# cache_ttl: a result kept for its TTL, keyed by the validated arguments, and never past the
# first expiry of the upstream answers it used.


def counted(cache_ttl: float = 30, fetch: str | None = None, fail: bool = False):
    """A ``@tool`` with ``cache_ttl``, fetching ``fetch`` first, and the list of its runs."""
    runs: list[dict] = []

    @tool(cache_ttl=cache_ttl)
    async def kept_ttl(ctx: Context, n: int = 0, items: list[dict[str, float]] = [], word: str = "") -> str:  # noqa: B006
        """Counts its runs."""
        runs.append({"n": n, "items": items, "word": word})
        if fetch is not None:
            await ctx.http.get_json(fetch, service="Up")
        if fail:
            raise ToolError("no")
        return f"run {len(runs)}"

    return kept_ttl, runs


def ttl_pipeline(spec, upstream: Upstream, clock: Clock, entries: int = 8) -> ToolPipeline:
    return pipeline_of(registry_of([spec], "t"), upstream, results=TTLCache(entries, clock))


async def test_a_cache_ttl_result_answers_identical_arguments_for_its_ttl(primed, clock):
    spec, runs = counted(cache_ttl=30)
    pipeline = ttl_pipeline(spec, primed, clock)
    first = await pipeline.call("kept_ttl", {"n": 1}, CALLER)
    clock.now += 29
    assert await pipeline.call("kept_ttl", {"n": 1}, CALLER) is first
    assert (await pipeline.call("kept_ttl", {"n": 2}, CALLER)) is not first
    clock.now += 1
    assert await pipeline.call("kept_ttl", {"n": 1}, CALLER) is not first
    assert [r["n"] for r in runs] == [1, 2, 1]


@pytest.mark.parametrize(("path", "kept_for"), [("http://up/short", 10), ("http://up/long", 30)])
async def test_a_cache_ttl_result_never_outlives_the_upstream_answers_it_used(primed, clock, path, kept_for):
    spec, runs = counted(cache_ttl=30, fetch=path)  # short: max 10 s fresh; long: 50 s
    pipeline = ttl_pipeline(spec, primed, clock)
    first = await pipeline.call("kept_ttl", {}, CALLER)
    clock.now += kept_for - 0.5
    assert await pipeline.call("kept_ttl", {}, CALLER) is first
    clock.now += 1
    assert await pipeline.call("kept_ttl", {}, CALLER) is not first
    assert len(runs) == 2


async def test_a_cache_ttl_result_made_from_an_answer_that_may_not_be_kept_is_not_kept(primed, clock):
    spec, runs = counted(cache_ttl=30, fetch="http://up/not-cached")  # the client is not open: the request fails
    pipeline = ttl_pipeline(spec, primed, clock)
    for _ in range(2):
        assert (await pipeline.call("kept_ttl", {}, CALLER)).result.is_error
    assert len(runs) == 2 and len(pipeline.results) == 0


async def test_a_cache_ttl_error_is_never_kept_nor_anything_with_no_room(primed, clock):
    failing, failed_runs = counted(fail=True)
    pipeline = ttl_pipeline(failing, primed, clock)
    off, off_runs = counted()
    no_room = ttl_pipeline(off, primed, clock, entries=0)
    for _ in range(2):
        await pipeline.call("kept_ttl", {}, CALLER)
        await no_room.call("kept_ttl", {}, CALLER)
    assert len(failed_runs) == len(off_runs) == 2


async def test_nested_arguments_that_validate_alike_share_a_kept_result(primed, clock):
    spec, runs = counted()
    pipeline = ttl_pipeline(spec, primed, clock)
    first = await pipeline.call("kept_ttl", {"items": [{"a": 1, "b": 2.5}], "word": "x" * 300}, CALLER)
    same = {"word": "x" * 300, "items": [{"b": 2.5, "a": 1.0}]}  # key order and 1 / 1.0 as a float field
    assert await pipeline.call("kept_ttl", same, CALLER) is first
    for other in ({"items": [{"a": 1, "b": 2.5}, {}]}, {"items": [{"a": -0.0}]}, {"items": [{"a": 0.0}]}):
        assert await pipeline.call("kept_ttl", other, CALLER) is not first
    assert len(runs) == 4


def test_the_key_of_a_kept_result_tells_apart_what_python_finds_equal():
    from skywarden.server.calls.caches import kept_result_key

    keys = {
        kept_result_key("t", arguments)
        for arguments in (
            {"v": 1},
            {"v": 1.0},
            {"v": True},
            {"v": 0.0},
            {"v": -0.0},
            {"v": "1"},
            {"v": [1]},
            {"v": (1,)},
        )
    }
    assert len(keys) == 7  # a list and a tuple are both JSON arrays
    assert kept_result_key("t", {"a": 1, "b": {"c": [1, 2]}}) == kept_result_key("t", {"b": {"c": [1, 2]}, "a": 1})
    assert kept_result_key("t", {"v": 1}) != kept_result_key("u", {"v": 1})
    assert len(kept_result_key("t", {"text": "x" * 100_000})[1]) == 32  # a digest, whatever the size
    assert kept_result_key("t", {"v": object()}) is None  # no stable form: that call is not kept


async def test_arguments_without_a_stable_form_are_run_every_time(primed, clock):
    class Token:
        pass

    class Loads(Schema):
        token = fields.Function(deserialize=lambda value: Token())

    runs = []

    @tool(arguments=Loads, cache_ttl=30)
    async def opaque(ctx: Context, token) -> str:
        """Gets an object its schema made."""
        runs.append(token)
        return "ran"

    pipeline = ttl_pipeline(opaque, primed, clock)
    for _ in range(2):
        assert not (await pipeline.call("opaque", {"token": "t"}, CALLER)).result.is_error
    assert len(runs) == 2


def test_cache_results_is_deprecated_with_a_warning_when_the_tool_loads():
    async def call(arguments, context):
        return ToolResult(content=[])

    with capture_logs() as logs:
        register_tool(make_tool(call), "acme 1.0")
        register_tool(make_tool(call, name="fresh", cache_results=False), "acme 1.0")
    [line] = [e for e in logs if e["event"].startswith("cache_results is deprecated")]
    assert line["log_level"] == "warning" and line["tool"] == "kept" and "cache_ttl" in line["event"]


async def test_a_class_form_tool_may_declare_cache_ttl(primed, clock):
    runs = []

    async def call(arguments, context):
        runs.append(1)
        return ToolResult(content=[text_content("made")])

    tool_object = make_tool(call, cache_results=False, pure_arguments=False)
    tool_object.cache_ttl = 5
    pipeline = pipeline_for(tool_object, primed, clock)
    first = await pipeline.call("kept", {"n": 1}, CALLER)
    assert await pipeline.call("kept", {"n": 1}, CALLER) is first
    clock.now += 5
    assert await pipeline.call("kept", {"n": 1}, CALLER) is not first and len(runs) == 2
