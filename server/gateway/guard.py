"""The orphan guard: ``python -m skywarden.server.gateway.guard COMMAND [ARGS...]``.

A stdio upstream runs under this small parent in a process group of its own (the SDK starts it
in a new session). When the server that started it stops cleanly, the SDK closes the upstream's
stdin and then ends the group. When the server is killed (SIGKILL, OOM), nothing of it runs: the
kernel then sends this guard SIGTERM (``PR_SET_PDEATHSIG``), and the guard kills the whole group,
the upstream and anything it started, so no upstream outlives the server.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def _end_group(signum: int, frame: object) -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)  # the guard is in the group too: it ends with it


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m skywarden.server.gateway.guard COMMAND [ARGS...]", file=sys.stderr)
        return 2
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGTERM, _end_group)
    if os.getppid() != parent:  # the server died before the guard was armed
        _end_group(signal.SIGTERM, None)
    try:
        child = subprocess.Popen(argv, stdin=0, stdout=1, stderr=2)  # noqa: S603  (the operator's configured command)
    except OSError as exc:
        print(f"skywarden: cannot start {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    # The upstream holds the pipes now: when it exits, the server reads the end of its output.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    while True:
        try:
            return child.wait()
        except InterruptedError:
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
