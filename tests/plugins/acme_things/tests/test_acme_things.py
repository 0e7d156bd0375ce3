import pytest
from skywarden.server.testing import Answer, PluginStartError, fake_upstream, running_app

from acme_things import things

ACME = {
    "/me": {"account": "a1"},
    "/things/7": Answer({"name": "seven", "size": 7}, headers={"Cache-Control": "max-age=300"}),
    "POST /accounts/a1/things": Answer({"name": "new", "size": None}, status=201),
}


@pytest.mark.asyncio
async def test_get_and_add_things():
    async with fake_upstream(ACME) as acme:
        async with running_app(tools=[things], acme_base_url=acme.url, acme_api_key="k-0123456789") as app:
            key = await app.create_key(scopes=["acme"])
            for _ in range(2):  # the second answer comes from the result cache
                status, body = await app.call_tool("get_thing", {"id": 7}, key)
                assert status == 200 and body["structuredContent"] == {"name": "seven", "size": 7}
            status, body = await app.call_tool("get_thing", {"id": 8}, key)
            assert body["isError"] and body["content"][0]["text"] == "There is no thing 8."
            status, answer = await app.call_tool_mcp("add_thing", {"name": "new"}, key)
            assert answer["result"]["structuredContent"] == {"name": "new", "size": None}
        assert [(r.method, r.path) for r in acme.requests] == [
            ("GET", "/me"),
            ("GET", "/things/7"),
            ("GET", "/things/8"),
            ("POST", "/accounts/a1/things"),
        ]
        assert acme.requests[-1].headers["X-Api-Key"] == "k-0123456789"
        assert acme.requests[-1].json() == {"name": "new", "size": None}


@pytest.mark.asyncio
async def test_a_refused_key_stops_the_start():
    async with fake_upstream({"/me": Answer({}, status=401)}) as acme:
        with pytest.raises(PluginStartError, match="Acme refused the key"):
            async with running_app(tools=[things], acme_base_url=acme.url, acme_api_key="k-wrong-0000"):
                pass
