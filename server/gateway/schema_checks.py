"""An upstream's schema, ready to check values: in the server's process when the check is
bounded to be quick, in the schema worker's otherwise.

``schema_cost`` bounds what a value may cost from the schema alone, by the size of its JSON; a
check whose bound passes ``INLINE_NS`` (or whose schema has no bound) goes to the worker
(``schema_worker``), which a check that passes its time limit cannot outlast. Both give the
first error, described alike (``json_schema.error_fields``).
"""

from __future__ import annotations

from typing import Any

from skywarden.server.gateway.schema_cost import cost_of
from skywarden.server.gateway.schema_worker import SchemaWorker
from skywarden.server.jsonutil import dumps
from skywarden.server.plugins.schema_errors import error_fields, first_error

INLINE_NS = 20_000_000  # the most a check made in the server's process may cost, by the bound
# A pattern keeps what it learnt of the strings it matched, up to about 4 MB each (170 KB after
# strings of 1 KB): a value larger than this is matched against patterns in the worker only.
PATTERN_INLINE_BYTES = 1024


class UpstreamSchema:
    """``validator``: ``schema`` compiled (``tools.compile_schema``); ``worker``: where a check
    goes that may be slow (the upstream connection's; one of its own, made at the first such
    check, when None)."""

    def __init__(self, schema: Any, validator: Any, worker: SchemaWorker | None = None) -> None:
        self.validator = validator
        self.json = dumps(schema)
        self.cost = cost_of(schema)
        self._worker = worker

    def quick(self, value: Any) -> bool:
        """Whether checking ``value`` here is bounded to take at most ``INLINE_NS`` (its JSON is
        written to be measured: a few microseconds for the few KB most values are)."""
        return self._quick_for(len(dumps(value)))

    def _quick_for(self, size: int) -> bool:
        if self.cost is None:
            return False
        return self.cost.ns(size) <= INLINE_NS and (not self.cost.patterns or size <= PATTERN_INLINE_BYTES)

    async def first_error(self, value: Any, key: str = "") -> dict[str, Any] | None:
        """The first error of ``value`` (``error_fields``), or None when it is valid: checked here
        when ``quick``, in the worker otherwise (as the check of ``key``, the caller's). ``ValueError``
        or ``TypeError`` for a value it cannot check; ``CheckFailed`` when the worker could not
        check it in time."""
        written = dumps(value)
        if self._quick_for(len(written)):
            error = first_error(self.validator, value)
            return error_fields(error) if error is not None else None
        if self._worker is None:
            self._worker = SchemaWorker()
        return await self._worker.first_error(self.json, written, key)
