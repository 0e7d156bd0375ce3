"""Install Node-based test tools from the npm registry into .test-tools/ (once per spec).

Node 22 comes from the npm package ``node@22`` when the machine's node is older.
An install that cannot complete fails the test with the reason, never skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = Path(os.environ.get("SKYWARDEN_TEST_TOOLS", ROOT / ".test-tools"))


def ensure_npm_packages(name: str, packages: list[str]) -> Path:
    """Return a prefix whose node_modules holds ``packages`` plus node 22."""
    prefix = TOOLS_DIR / name
    marker = prefix / "installed.json"
    wanted = sorted(["node@22", *packages])
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return prefix
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: the MCP conformance and Inspector tests need Node.js and npm")
    prefix.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", *wanted],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(f"npm could not install {' '.join(wanted)} (exit {result.returncode}):\n{result.stderr[-2000:]}")
    marker.write_text(json.dumps(wanted))
    return prefix


def node_env(prefix: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODE_", "SKYWARDEN_"))}
    env["PATH"] = f"{prefix / 'node_modules' / 'node' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def bin_path(prefix: Path, name: str) -> str:
    return str(prefix / "node_modules" / ".bin" / name)
