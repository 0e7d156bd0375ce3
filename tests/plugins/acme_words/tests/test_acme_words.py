import pytest
from skywarden.server.testing import running_app

from acme_words import word_count


@pytest.mark.asyncio
async def test_word_count():
    async with running_app(tools=[word_count]) as app:
        key = await app.create_key(scopes=["words"])
        status, body = await app.call_tool("word_count", {"text": "one two three"}, key)  # REST
        assert status == 200 and body["structuredContent"] == {"result": 3}
        status, answer = await app.call_tool_mcp("word_count", {"text": ""}, key)  # MCP
        assert answer["result"]["isError"] is True  # too short: the caller is told why
