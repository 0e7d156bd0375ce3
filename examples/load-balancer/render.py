#!/usr/bin/env python3
"""Write haproxy.cfg or nginx.conf for one or more Skywarden instances (docs/deployment.md).

    PUBLIC_HOST=mcp.example.com LISTEN_ADDRESS=0.0.0.0:443 TLS_PEM=/etc/haproxy/mcp.pem \\
      python3 render.py haproxy 10.0.0.11:8080 10.0.0.12:8080 > /etc/haproxy/skywarden.cfg

Each ``${NAME}`` in the template is taken from the environment. A template line holding
``${INSTANCE}`` is written once per instance address given, in order, with ``${INSTANCE_NUMBER}``
counting from 1. The balancer's own variables (nginx's ``$remote_addr``) are left as they are.
Only the standard library: it runs wherever Python 3 does.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATES = {"haproxy": "haproxy.cfg", "nginx": "nginx.conf"}
PER_INSTANCE = "${INSTANCE}"
_NAME = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# One word a configuration file takes as it is: no spaces, quotes, or characters either
# balancer reads as syntax (; { } # $ \).
_WORD = re.compile(r"[^\s\"';{}#$\\]+")
_ADDRESS = re.compile(r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")


class RenderError(ValueError):
    """A value that would not make a working configuration; the message says which and why."""


def check_address(address: str) -> str:
    match = _ADDRESS.fullmatch(address)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise RenderError(f"instance address {address!r} is not host:port (e.g. 10.0.0.11:8080 or [fd00::11]:8080)")
    return address


def render(template: str, instances: Sequence[str], environ: Mapping[str, str]) -> str:
    """The configuration for these instance addresses, with the template's other ${NAME}s from ``environ``."""
    if not instances:
        raise RenderError("name at least one instance address (host:port)")
    for address in instances:
        check_address(address)
    repeated = {a for a in instances if instances.count(a) > 1}
    if repeated:
        raise RenderError(f"instance address named more than once: {', '.join(sorted(repeated))}")

    out: list[str] = []
    for line in template.splitlines(keepends=True):
        if PER_INSTANCE in line:
            for number, address in enumerate(instances, start=1):
                out.append(line.replace(PER_INSTANCE, address).replace("${INSTANCE_NUMBER}", str(number)))
        else:
            out.append(line)
    text = "".join(out)

    needed = sorted(set(_NAME.findall(text)))
    missing = [name for name in needed if not environ.get(name)]
    if missing:
        raise RenderError(f"set {', '.join(missing)} in the environment (see docs/deployment.md)")
    for name in needed:
        if _WORD.fullmatch(environ[name]) is None:
            raise RenderError(f"{name} must be one word without spaces, quotes or any of ; {{ }} # $ \\")
    return _NAME.sub(lambda m: environ[m[1]], text)


def main(argv: Sequence[str]) -> int:
    if len(argv) < 1 or argv[0] not in TEMPLATES:
        print(f"usage: render.py {{{'|'.join(TEMPLATES)}}} HOST:PORT [HOST:PORT ...]", file=sys.stderr)
        return 2
    template = (HERE / TEMPLATES[argv[0]]).read_text()
    try:
        sys.stdout.write(render(template, list(argv[1:]), os.environ))
    except RenderError as error:
        print(f"render.py: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
