"""The wheel holds only the skywarden namespace and registers the built-in tools as entry points."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses or Node tools: run by CI and ./scripts/test, not -m 'not slow'

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contents(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("skywarden-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"skywarden", "skywarden-0.1.0.dist-info"}
    for package in ("server", "server/auth", "server/mcp", "server/identity", "server/console", "tools", "clients"):
        assert f"skywarden/{package}/__init__.py" in names, package
    for asset in ("index.html", "app.js", "style.css"):  # the console works offline: its assets ship inside
        assert f"skywarden/server/console/static/{asset}" in names, asset
    assert not any(name.startswith(("server/", "tools/", "clients/", "tests/")) for name in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    required = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requires if "extra ==" not in r}
    for dependency in (
        "aiohttp",
        "aiohttp-cors",
        "aiohttp-apigami",
        "marshmallow",
        "structlog",
        "limits",
        "aiosqlite",
        "prometheus-client",
        "orjson",
        "pyjwt",
    ):
        assert dependency in required, f"{dependency} is not a dependency of the wheel: {sorted(required)}"
    extras = {line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Provides-Extra:")}
    assert {"postgres", "redis"} <= extras  # docs/deployment.md installs the wheel with [postgres,redis]
    by_extra = {
        extra: {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requires if f'extra == "{extra}"' in r}
        for extra in ("postgres", "redis")
    }
    assert by_extra == {"postgres": {"asyncpg"}, "redis": {"redis", "hiredis"}}
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "weather = skywarden.tools.weather:weather" in entry_points
    assert "skywarden-client = skywarden.clients.cli:main" in entry_points
