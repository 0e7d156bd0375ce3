"""The Node-based test tools, installed from the npm registry into one shared prefix.

One ``npm install`` into ``.test-tools/npm`` holds Node 22 (the npm package
``node@22``; the machine's node may be older) and every tool, each under an
alias so that two versions of the conformance suite live side by side and
share their dependencies (~300 MB in all). It reinstalls only when the list
below changes. An install that cannot complete fails the test with the
reason, never skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
TOOLS_DIR = Path(os.environ.get("SKYWARDEN_TEST_TOOLS", ROOT / ".test-tools"))
PREFIX = TOOLS_DIR / "npm"
NPM_INSTALL_TIMEOUT = 900

CONFORMANCE_STABLE = "0.1.16"
CONFORMANCE_PRERELEASE = "0.2.0-alpha.12"
INSPECTOR = "2.12.0"
MCP_REMOTE = "0.15.1"
OIDC_PROVIDER = "9.13.3"
AXE_CORE = "4.14.1"
SERVER_EVERYTHING = "2026.8.31"
# alias -> npm package spec; aliases name the tools in the tests
PACKAGES = {
    "node": "node@22",
    "undici": "undici@7",
    "conformance-stable": f"npm:@modelcontextprotocol/conformance@{CONFORMANCE_STABLE}",
    "conformance-prerelease": f"npm:@modelcontextprotocol/conformance@{CONFORMANCE_PRERELEASE}",
    "inspector": f"npm:@modelcontextprotocol/inspector@{INSPECTOR}",
    "mcp-remote": f"mcp-remote@{MCP_REMOTE}",
    "oidc-provider": f"oidc-provider@{OIDC_PROVIDER}",
    "axe-core": f"axe-core@{AXE_CORE}",
    "server-everything": f"npm:@modelcontextprotocol/server-everything@{SERVER_EVERYTHING}",
}


def _spec(alias: str, spec: str) -> str:  # "alias@npm:pkg@v" for aliased packages, else the spec
    return f"{alias}@{spec}" if spec.startswith("npm:") else spec


def ensure_tools() -> Path:
    """The shared prefix, installed once for this package list."""
    marker = PREFIX / "installed.json"
    wanted = sorted(_spec(a, s) for a, s in PACKAGES.items())
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return PREFIX
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: the MCP conformance and Inspector tests need Node.js and npm")
    PREFIX.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", *wanted],
        capture_output=True,
        text=True,
        timeout=NPM_INSTALL_TIMEOUT,
    )
    if result.returncode != 0:
        pytest.fail(f"npm could not install {' '.join(wanted)} (exit {result.returncode}):\n{result.stderr[-2000:]}")
    marker.write_text(json.dumps(wanted))
    return PREFIX


def node_binary(prefix: Path) -> str:
    return str(prefix / "node_modules" / "node" / "bin" / "node")


def tool_command(prefix: Path, alias: str, bin_name: str | None = None) -> list[str]:
    """``[node, script]`` for a tool's executable (its package.json ``bin``), whatever its alias."""
    package_dir = prefix / "node_modules" / alias
    bins = json.loads((package_dir / "package.json").read_text())["bin"]
    script = bins if isinstance(bins, str) else bins[bin_name] if bin_name else next(iter(bins.values()))
    return [node_binary(prefix), str((package_dir / script).resolve())]


def node_env(prefix: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODE_", "SKYWARDEN_"))}
    env["PATH"] = f"{prefix / 'node_modules' / 'node' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env
