"""The orphan guard: ``python -m skywarden.server.gateway.guard SERVER_PID COMMAND [ARGS...]``.

A stdio upstream runs as the child of this small parent, in a process group of its own. When the
server that started the guard stops cleanly, the SDK closes the upstream's stdin (it exits, and
the guard with it) or, after a grace period, sends the guard SIGTERM. When the server is killed
(SIGKILL, out of memory), nothing of it runs: the kernel then sends the guard SIGTERM
(``PR_SET_PDEATHSIG``). Either way the guard kills the upstream's whole group, the upstream and
anything it started, and reaps the upstream before it exits itself, so no upstream process
outlives the server and none is left a zombie for a server running as PID 1 to collect.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
_children: list[subprocess.Popen[bytes]] = []
_asked: list[int] = []  # a SIGTERM that came before the upstream was started


def _end(signum: int = signal.SIGTERM, frame: object = None) -> None:
    """End the upstream's group, reap the upstream, exit. A signal handler: it runs in the main
    thread, which may be inside ``Popen.wait`` holding its lock, so it reaps with ``waitpid``
    itself (``Popen.wait`` here would wait for that lock forever)."""
    if not _children:
        _asked.append(signum)
        return
    for child in _children:
        try:
            os.killpg(child.pid, signal.SIGKILL)  # its group: the upstream and what it started
        except ProcessLookupError:
            pass
        try:
            os.waitpid(child.pid, 0)
        except ChildProcessError:  # already reaped by the main thread's wait
            pass
    os._exit(128 + signum)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python -m skywarden.server.gateway.guard SERVER_PID COMMAND [ARGS...]", file=sys.stderr)
        return 2
    server, command = int(argv[0]), argv[1:]
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGTERM, _end)
    if os.getppid() != server:  # the server died before the guard was armed
        return 1
    try:
        # the operator's configured command, in a group of its own that the guard can end whole
        _children.append(subprocess.Popen(command, stdin=0, stdout=1, stderr=2, process_group=0))  # noqa: S603
    except OSError as exc:
        print(f"skywarden: cannot start {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    if _asked:
        _end(_asked[0])
    # The upstream holds the pipes now: when it exits, the server reads the end of its output.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    while True:
        try:
            code = _children[0].wait()
            break
        except InterruptedError:
            continue
    try:
        os.killpg(_children[0].pid, signal.SIGKILL)  # what it started and left behind
    except ProcessLookupError:
        pass
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
