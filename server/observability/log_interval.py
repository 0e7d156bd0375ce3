"""Warnings that would repeat on every request while something is away (Redis, say) are
logged at most once per interval, with how many were left out since the last one: an outage
of a million requests is a few log lines, not a million."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

WARNING_INTERVAL_SECONDS = 60.0


@dataclass
class OncePer:
    seconds: float = WARNING_INTERVAL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _next: float = -math.inf
    _left_out: int = 0

    def due(self) -> int | None:
        """None while the interval since the last logged one runs; otherwise how many were
        left out since then (and the interval starts again)."""
        now = self.clock()
        if now < self._next:
            self._left_out += 1
            return None
        self._next = now + self.seconds
        left_out, self._left_out = self._left_out, 0
        return left_out
