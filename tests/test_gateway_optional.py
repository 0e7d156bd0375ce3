"""The gateway's dependencies (the MCP SDK and what it brings: anyio, httpx2, pydantic) are the
`gateway` extra: a server without them starts and serves, as `./scripts/serve` installs it."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_THE_SDK = """
import sys
for name in ("mcp", "mcp_types", "anyio", "httpx2", "pydantic"):
    sys.modules[name] = None  # importing any of them now fails
from skywarden.server.app import create_app
from skywarden.server.cli.main import main
from skywarden.server.cli import serve
print("imported")
"""


def test_the_server_imports_without_the_gateway_extra():
    done = subprocess.run([sys.executable, "-c", WITHOUT_THE_SDK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "imported"
