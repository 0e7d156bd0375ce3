"""Types are checked: mypy, configured in pyproject.toml, passes in strict mode on every package
the project installs, each checked under the name it is installed as (see docs/architecture.md,
"Checking types")."""

from __future__ import annotations

import configparser
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _package_dir() -> dict[str, str]:
    """setup.cfg's ``package_dir``: installed package name -> folder in the repository."""
    setup = configparser.ConfigParser(interpolation=None)
    setup.read(ROOT / "setup.cfg")
    pairs = (line.split("=") for line in setup["options"]["package_dir"].strip().splitlines())
    return {name.strip(): folder.strip() for name, folder in pairs}


def test_every_installed_package_is_checked_strictly_under_its_installed_name() -> None:
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["strict"] is True
    assert sorted(mypy["packages"]) == sorted(_package_dir())
    base = ROOT / mypy["mypy_path"]
    for package, folder in _package_dir().items():
        link = base / package.replace(".", "/")
        assert link.resolve() == (ROOT / folder).resolve(), f"{link} must lead to {folder}/"


def test_no_module_has_its_errors_ignored() -> None:
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"].get("overrides", [])
    ignored = [override["module"] for override in overrides if override.get("ignore_errors")]
    assert not ignored, f"mypy ignores the errors of {ignored}: fix them instead"


def test_mypy_finds_no_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=110, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
