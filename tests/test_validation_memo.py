"""Identical arguments of a ``pure_arguments`` tool are validated once; everything else every time."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, fields, post_load

from skywarden.server.calls.pipeline import InvalidArguments
from skywarden.server.plugins.http_client import Upstream
from skywarden.server.plugins.registry import ToolRegistry, register_tool
from skywarden.server.principal import Principal
from skywarden.server.ttlcache import TTLCache
from skywarden.tools.contract import ToolResult, text_content
from tests.support.pipelines import pipeline_of

LOADS: list[dict] = []
CALLER = Principal("key", "key_memo", "memo", frozenset({"*"}))


class Args(Schema):
    flag = fields.Raw(required=True)
    value = fields.Float(load_default=1.0)

    @post_load
    def seen(self, data: dict, **kwargs: Any) -> dict:
        LOADS.append(dict(data))
        return data


def make_tool(name: str, pure: bool):
    class Tool:
        description = "memo test"
        Arguments = Args
        pure_arguments = pure

        async def call(self, arguments: dict, context) -> ToolResult:
            arguments["flag"] = "changed by the tool"  # must not reach the next call
            return ToolResult(content=[text_content("ok")])

    Tool.name = name
    return Tool()


@pytest.fixture
def pipeline():
    LOADS.clear()
    registry = ToolRegistry(
        [register_tool(make_tool("pure", True), "t"), register_tool(make_tool("plain", False), "t")]
    )
    return pipeline_of(registry, Upstream("t", 1, 1000, TTLCache(1)))


async def test_identical_arguments_are_validated_once_and_stay_private_to_each_call(pipeline):
    for _ in range(3):
        await pipeline.call("pure", {"flag": "a", "value": 2.5}, CALLER)
    assert len(LOADS) == 1
    validated, _ = pipeline._validate(pipeline.registry.get("pure"), {"value": 2.5, "flag": "a"}, "pure")
    assert validated == {"flag": "a", "value": 2.5}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"flag": True}, {"flag": 1}),
        ({"flag": 0.0}, {"flag": -0.0}),
        ({"flag": 1}, {"flag": 1.0}),
        ({"flag": "a"}, {}),
    ],
)
async def test_values_that_compare_equal_but_differ_are_validated_apart(pipeline, first, second):
    tool = pipeline.registry.get("pure")
    pipeline._validate(tool, first, tool.name)
    if second:
        pipeline._validate(tool, second, tool.name)
        assert len(LOADS) == 2
    else:
        with pytest.raises(InvalidArguments):  # a refusal is never remembered either
            pipeline._validate(tool, second, tool.name)


async def test_other_tools_and_other_shapes_are_validated_every_time(pipeline):
    plain = pipeline.registry.get("plain")
    pure = pipeline.registry.get("pure")
    for _ in range(2):
        pipeline._validate(plain, {"flag": "a"}, plain.name)
        pipeline._validate(pure, {"flag": ["a", "list"]}, pure.name)
        pipeline._validate(pure, {"flag": "x" * 300}, pure.name)
    assert len(LOADS) == 6


def test_the_memo_is_bounded(pipeline, monkeypatch):
    monkeypatch.setattr(pipeline, "validated", TTLCache(10))
    tool = pipeline.registry.get("pure")
    for i in range(50):
        pipeline._validate(tool, {"flag": i}, tool.name)
    assert len(pipeline.validated) == 10
