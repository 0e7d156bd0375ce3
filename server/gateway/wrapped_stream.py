"""A transport's stream seen through a wrapper: everything but what the wrapper changes is the
inner stream's (its context, its other methods and attributes, such as ``last_context``)."""

from __future__ import annotations

from typing import Any, Self


class WrappedStream:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
