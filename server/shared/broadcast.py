"""Tell every instance of a deployment at once: "this key changed", "flush your usage counts",
"read the stored upstreams again", "this MCP session ended" (its change streams end).

``publish`` runs this instance's handlers itself, then (with Redis) publishes the event and
waits until every instance listening has handled it and said so, at most
``BROADCAST_WAIT_SECONDS``. So when an admin answer says a key is revoked, no instance that
was listening still honours it. Redis pub/sub was chosen over PostgreSQL LISTEN/NOTIFY
because Redis is what a multi-instance deployment already shares for counters and sessions,
and because the SQLite + Redis and PostgreSQL + Redis set-ups then work alike.

Pub/sub does not keep messages for an instance that is away. While an instance is not
subscribed, ``listening`` is false and it must not trust anything it cached (the
authenticator then asks the store on every request); on subscribing again it calls the
``on_resubscribe`` callbacks, which drop every cached key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger("skywarden.server")
Handler = Callable[[str], Awaitable[None]]
BROADCAST_WAIT_SECONDS = 1.5  # under the Redis socket timeout
RESUBSCRIBE_SECONDS = (0.1, 2.0)  # first and longest pause between attempts
EVENT_NAMES = frozenset({"key-changed", "flush-usage", "upstreams-changed", "session-ended"})


class LocalBroadcast:
    """Within this process: publishing just runs the handlers. ``alone`` is false when sibling
    processes (``--workers``) share the store but cannot hear this one: then nothing cached
    may be trusted (``listening`` is false)."""

    def __init__(self, alone: bool = True) -> None:
        self.listening = alone
        self._handlers: dict[str, list[Handler]] = {}
        self.on_resubscribe: list[Callable[[], object]] = []  # what they return is not used

    def on(self, event: str, handler: Handler) -> None:
        if event not in EVENT_NAMES:
            raise ValueError(f"unknown event {event!r}")
        self._handlers.setdefault(event, []).append(handler)

    async def _run_handlers(self, event: str, argument: str) -> None:
        for handler in self._handlers.get(event, ()):
            await handler(argument)

    async def publish(self, event: str, argument: str = "") -> None:
        await self._run_handlers(event, argument)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def reachable(self) -> bool:
        return True


class RedisBroadcast(LocalBroadcast):
    def __init__(self, client: Any, key_prefix: str) -> None:
        super().__init__()
        self.client = client
        self.channel = f"{key_prefix}:events"
        self.key_prefix = key_prefix
        self.origin = secrets.token_hex(8)
        self.listening = False
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._retry_now = asyncio.Event()

    async def publish(self, event: str, argument: str = "") -> None:
        await self._run_handlers(event, argument)
        ack = f"{self.key_prefix}:acks:{secrets.token_hex(12)}"
        message = json.dumps({"event": event, "argument": argument, "origin": self.origin, "ack": ack})
        confirmed = receivers = 0
        try:
            receivers = await self.client.publish(self.channel, message)
            deadline = time.monotonic() + BROADCAST_WAIT_SECONDS
            while confirmed < receivers and (left := deadline - time.monotonic()) > 0:
                if await self.client.blpop([ack], timeout=left) is None:
                    break
                confirmed += 1
            await self.client.delete(ack)
        except Exception as exc:
            log.warning(
                "broadcast failed; other instances forget cached keys within key_cache_ttl",
                broadcast=event,
                error=type(exc).__name__,
            )
            return
        if confirmed < receivers:
            log.warning(
                "broadcast not confirmed by every instance", broadcast=event, listening=receivers, confirmed=confirmed
            )

    def _parse(self, raw: bytes) -> tuple[str, str, str, str] | None:
        """(event, argument, origin, ack key), or None for anything but a message ``publish`` writes."""
        try:
            message = json.loads(raw)
            parts = tuple(message[k] for k in ("event", "argument", "origin", "ack"))
        except (ValueError, KeyError, TypeError):
            return None
        event, argument, origin, ack = parts
        if not all(isinstance(part, str) for part in parts) or event not in EVENT_NAMES:
            return None
        if not ack.startswith(f"{self.key_prefix}:acks:") or len(ack) > len(self.key_prefix) + 40:
            return None
        return event, argument, origin, ack

    async def _handle(self, raw: bytes) -> None:
        parsed = self._parse(raw)
        if parsed is None:
            log.warning("broadcast message not understood; ignored")
            return
        event, argument, origin, ack = parsed
        if origin != self.origin:
            try:
                await self._run_handlers(event, argument)
            except Exception as exc:
                log.warning("broadcast handler failed", broadcast=event, error=type(exc).__name__)
        await self.client.rpush(ack, b"1")
        await self.client.expire(ack, 60)

    async def _listen(self) -> None:
        pause = RESUBSCRIBE_SECONDS[0]
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                for drop_cached in self.on_resubscribe:
                    drop_cached()
                self.listening = True
                self._subscribed.set()
                pause = RESUBSCRIBE_SECONDS[0]
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self._handle(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.listening:
                    log.warning(
                        "broadcast channel lost; verifying every key with the store until it is back",
                        error=type(exc).__name__,
                    )
                self.listening = False
                self._subscribed.clear()
                self._retry_now.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._retry_now.wait(), pause)
                pause = min(pause * 2, RESUBSCRIBE_SECONDS[1])
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def start(self) -> None:
        """Subscribe before the first request is served (or go on unsubscribed if Redis is down)."""
        self._listener = asyncio.create_task(self._listen())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), BROADCAST_WAIT_SECONDS)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def reachable(self) -> bool:
        """Subscribed now; when not, try at once rather than after the back-off (readiness asks)."""
        if not self.listening and self._listener is not None:
            self._retry_now.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._subscribed.wait(), BROADCAST_WAIT_SECONDS)
        return self.listening
