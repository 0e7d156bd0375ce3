"""How to install an optional part of Skywarden (an extra) into the Python that runs it.

Skywarden is not on a package index: it is installed from a checkout or from a wheel built
from one (docs/deployment.md). So a message about a missing driver names the command that
works wherever Skywarden came from: this interpreter's pip, with the extra's requirements as
this installation declares them (``extras_require`` in setup.cfg).
"""

from __future__ import annotations

import re
import shlex
import sys
from importlib import metadata

DISTRIBUTION = "skywarden"
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def extra_requirements(extra: str) -> list[str]:
    """The requirements of ``extra`` declared by the installed distribution (empty if none)."""
    try:
        declared = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    found = []
    for requirement in declared:
        spec, _, marker = requirement.partition(";")
        match = _EXTRA_MARKER.search(marker)
        if match and match.group(1) == extra:
            found.append(spec.strip())
    return found


def pip_install(*requirements: str) -> str:
    """The command that installs ``requirements`` into the running environment."""
    return " ".join([shlex.quote(sys.executable), "-m", "pip", "install", *map(shlex.quote, requirements)])


def install_command(extra: str) -> str:
    """A command that installs ``extra`` into the running environment."""
    requirements = extra_requirements(extra)
    if not requirements:
        return f"in a Skywarden checkout, pip install '.[{extra}]'"
    return pip_install(*requirements)
