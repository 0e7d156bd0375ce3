"""Running ``skywarden`` as an operator does: a real process, no SKYWARDEN_* variable but those given."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Run:
    code: int
    out: str
    err: str

    def one_line_refusal(self) -> str:
        """The single stderr line of a refusal (asserted: non-zero exit, one line, no traceback)."""
        assert self.code != 0, (self.out, self.err)
        assert "Traceback" not in self.err and "Traceback" not in self.out, self.err
        lines = self.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("skywarden: "), self.err
        return lines[0]


def run_skywarden(*args: str, env: dict[str, str] | None = None, timeout: float = 90, cwd: str | None = None) -> Run:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SKYWARDEN_")} | (env or {})
    done = subprocess.run(
        [sys.executable, "-m", "skywarden.server.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
        cwd=cwd,
    )
    return Run(done.returncode, done.stdout, done.stderr)
