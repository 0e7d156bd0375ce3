"""An upstream's schema, ready to check values: in the server's process when the check is
bounded to be quick, in the schema worker's otherwise.

``schema_cost`` bounds what checking a value may cost from the schema alone, by the size of its
JSON; a check whose bound passes ``INLINE_NS`` (or whose schema has no bound) goes to the worker
(``schema_worker``), which a check that passes its time limit cannot outlast. So does every
check against a schema with patterns: a pattern keeps what it learnt of the strings it matched,
up to about 4 MB each, whatever its options, and an upstream may write 2,000 of them. And so
does the first error of an invalid value whose schema has ``anyOf`` or ``oneOf``: jsonschema-rs
makes every branch's errors to say why none matched, which for 90 KB of ``[{}, ...]`` against
an optional list of a two-field model took 0.5 s and 137 MB where the check took 0.05 ms. Both
ways give the same first error, described alike (``schema_errors.error_fields``).
"""

from __future__ import annotations

from typing import Any

from skywarden.server.gateway.schema_cost import cost_of
from skywarden.server.gateway.schema_worker import SchemaWorker
from skywarden.server.jsonutil import dumps
from skywarden.server.plugins.schema_errors import error_fields, first_error

INLINE_NS = 20_000_000  # the most a check made in the server's process may cost, by the bound


class UpstreamSchema:
    """``validator``: ``schema`` compiled (``tools.compile_schema``: a schema that does not compile
    is refused before this); kept only when values may be checked here. ``worker``: where the
    other checks go (the upstream connection's; one of its own, made when first needed, when None)."""

    def __init__(self, schema: Any, validator: Any, worker: SchemaWorker | None = None) -> None:
        self.json = dumps(schema)
        self.cost = cost_of(schema)
        self.validator = validator if self.cost is not None and not self.cost.patterns else None
        self._worker = worker

    def checked_here(self, value: Any) -> tuple[bool, dict[str, Any] | None]:
        """``(True, None)`` when ``value`` is valid, ``(True, error)`` when its first error is
        known, both checked here, where the bound says it is quick (its JSON is written to be
        measured: a few microseconds for the few KB most values are); ``(False, None)`` when the
        worker is to check it (``in_worker``). ``ValueError`` or ``TypeError`` for a value it
        cannot check."""
        validator, cost = self.validator, self.cost
        if validator is None or cost is None or cost.ns(len(dumps(value))) > INLINE_NS:
            return False, None
        if validator.is_valid(value):
            return True, None
        if cost.branches:  # its first error is the worker's to find
            return False, None
        error = first_error(validator, value)
        return True, (error_fields(error) if error is not None else None)

    async def first_error(self, value: Any, key: str = "") -> dict[str, Any] | None:
        """The first error of ``value`` (``error_fields``), or None when it is valid: checked here
        or in the worker (as the check of ``key``, the caller's). ``ValueError`` or
        ``TypeError`` for a value it cannot check; ``CheckFailed`` when the worker could not
        check it in time."""
        done, error = self.checked_here(value)
        return error if done else await self.in_worker(value, key)

    async def in_worker(self, value: Any, key: str = "") -> dict[str, Any] | None:
        """``first_error`` made in the worker, for a value ``checked_here`` left to it."""
        if self._worker is None:
            self._worker = SchemaWorker()
        instance = dumps(value)
        # against anyOf/oneOf, the first error of an invalid value may cost far more than the
        # bound (every branch's errors are made): unknown, counted as the worker's time limit
        cost = self.cost
        estimate = cost.ns(len(instance)) / 1e9 if cost is not None and not cost.branches else None
        return await self._worker.first_error(self.json, instance, key, estimate)
