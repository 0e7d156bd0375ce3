"""docs/gateway.md's worked example, run as it is written: the SDK server file, the TOML table,
the key command and the call, with its documented answer. Only ``python`` is this test's Python
(the one with the SDK installed)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.cli_runs import run_skywarden
from tests.support.logs import SECRETS
from tests.support.server_process import free_port, start_server

pytestmark = pytest.mark.slow

DOC = (Path(__file__).resolve().parent.parent / "docs" / "gateway.md").read_text()


def blocks() -> list[tuple[str, str]]:
    """Each fenced block of the page: (its language, its text)."""
    found, language, lines = [], None, []
    for line in DOC.splitlines():
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip(), []
            else:
                found.append((language, "\n".join(lines) + "\n"))
                language = None
        elif language is not None:
            lines.append(line)
    return found


def block(language: str, containing: str) -> str:
    found = [text for lang, text in blocks() if lang == language and containing in text]
    assert len(found) == 1, f"one {language} block with {containing!r} in docs/gateway.md"
    return found[0]


async def test_the_worked_example_runs_as_written(tmp_path):
    (tmp_path / "notes_server.py").write_text(block("python", "MCPServer"))
    toml = block("toml", "upstreams.notes")
    assert 'command = "python"' in toml
    (tmp_path / "skywarden.toml").write_text(toml.replace('"python"', json.dumps(sys.executable)))
    serve, create, curl, answer = block("", "skywarden serve").replace("\\\n", " ").splitlines()
    assert serve == "skywarden serve --config skywarden.toml"

    port = free_port()
    server = await start_server({"SKYWARDEN_PORT": str(port)}, "--config", "skywarden.toml", cwd=str(tmp_path))
    try:
        await server.wait_for(lambda e: e.get("event") == "upstream connected" and e.get("upstream") == "notes")
        made = run_skywarden(*create.split()[1:], cwd=str(tmp_path))
        assert made.code == 0, made.err
        key = re.search(r"key: (skw_\S+)", made.out).group(1)
        SECRETS.add(key)
        url = re.search(r"(http://\S+)", curl).group(1).replace("8080", str(port))
        body = json.loads(re.search(r"-d '(.*)'", curl).group(1))
        documented = json.loads(answer.removeprefix("# -> "))
        async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http:
            async with http.post(url, json=body) as called:
                assert called.status == 200
                assert await called.json() == documented
            async with http.post(url.replace("notes__add_note", "get_alerts"), json={"state": "KS"}) as refused:
                assert refused.status == 403  # the key has the notes upstream's tools alone
    finally:
        await server.stop()
