"""Handshake-era sessions: random ids bound to the principal that opened them, bounded in every way.

A session keeps only what the server needs later, each part capped in size: the negotiated
revision, whether ``notifications/initialized`` arrived, the *names* of the client's
capabilities (a tool asks "did the client declare sampling?") and a short client name and
version for the audit log. Whatever else a client sends at ``initialize`` is dropped.

Sessions are counted per key: a key may hold ``max_per_key`` of them (a 429 after that), and
when the whole store is full, a new session takes the place of the least recently used
session of the key holding the most, so one key can only ever exhaust its own share.

Worst case per session: about 2 KB of memory (measured in tests/test_abuse.py), so
``max_sessions`` x 2 KB in all (20 MB at the default 10,000).

``SessionStore`` is the interface; ``MemorySessionStore`` keeps sessions in this process. A
shared store (Redis) implements the same calls for several instances.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MAX_CAPABILITY_NAMES = 8  # MCP defines five client capabilities (roots, sampling, elicitation, tasks, experimental)
MAX_NAME = 32  # characters kept of a capability name
MAX_TEXT = 64  # characters kept of the client's name and version
SESSION_ID_BYTES = 32


class TooManySessions(RuntimeError):
    """This key already holds its allowance of sessions."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"This key already has {limit} open sessions; end one (DELETE /mcp) or let one expire.")
        self.limit = limit


@dataclass(slots=True)
class Session:
    id: str
    principal_id: str
    protocol_version: str
    capability_names: frozenset[str] = frozenset()
    client_name: str = ""
    client_version: str = ""
    created: float = 0.0
    last_seen: float = 0.0
    initialized: bool = False

    @property
    def client_capabilities(self) -> dict[str, Any]:
        return {name: {} for name in self.capability_names}


def text_field(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def capability_names(capabilities: Mapping[str, Any]) -> frozenset[str]:
    """The declared capability names, at most MAX_CAPABILITY_NAMES of at most MAX_NAME characters."""
    names = sorted(k[:MAX_NAME] for k in capabilities if isinstance(k, str))
    return frozenset(names[:MAX_CAPABILITY_NAMES])


class SessionStore(Protocol):
    async def create(
        self, principal_id: str, protocol_version: str, client_info: Mapping[str, Any], capabilities: Mapping[str, Any]
    ) -> Session: ...
    async def get(self, session_id: str) -> Session | None: ...
    async def save(self, session: Session) -> None: ...
    async def delete(self, session_id: str) -> bool: ...
    async def close(self) -> None: ...
    def __len__(self) -> int: ...


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def new_session(
    principal_id: str,
    protocol_version: str,
    client_info: Mapping[str, Any],
    capabilities: Mapping[str, Any],
    now: float = 0.0,
) -> Session:
    """A new session with a fresh id, keeping only the bounded parts of what the client sent."""
    return Session(
        id=new_session_id(),
        principal_id=principal_id,
        protocol_version=protocol_version,
        capability_names=capability_names(capabilities),
        client_name=text_field(client_info.get("name")),
        client_version=text_field(client_info.get("version")),
        created=now,
        last_seen=now,
    )


class MemorySessionStore:
    def __init__(
        self,
        idle_timeout: float,
        max_sessions: int,
        max_per_key: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.max_per_key = max_per_key or max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently seen first
        self._by_key: dict[str, OrderedDict[str, None]] = {}  # the same order, per key

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.idle_timeout

    def _remove(self, session_id: str) -> Session | None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            mine = self._by_key[session.principal_id]
            del mine[session_id]
            if not mine:
                del self._by_key[session.principal_id]
        return session

    def _sweep(self, now: float) -> None:
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if not self._expired(oldest, now):
                break
            self._remove(oldest.id)

    def _make_room(self, principal_id: str) -> None:
        """The store is full: the key holding the most sessions gives up its least recently used."""
        largest = max(self._by_key, key=lambda k: len(self._by_key[k]))
        if largest == principal_id or len(self._by_key[largest]) <= len(self._by_key.get(principal_id, ())):
            raise TooManySessions(len(self._by_key.get(principal_id, ())))
        self._remove(next(iter(self._by_key[largest])))

    async def create(
        self, principal_id: str, protocol_version: str, client_info: Mapping[str, Any], capabilities: Mapping[str, Any]
    ) -> Session:
        now = self._clock()
        self._sweep(now)
        if len(self._by_key.get(principal_id, ())) >= self.max_per_key:
            raise TooManySessions(self.max_per_key)
        if len(self._sessions) >= self.max_sessions:
            self._make_room(principal_id)
        session = new_session(principal_id, protocol_version, client_info, capabilities, now)
        self._sessions[session.id] = session
        self._by_key.setdefault(principal_id, OrderedDict())[session.id] = None
        return session

    async def get(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if self._expired(session, now):
            self._remove(session_id)
            return None
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        self._by_key[session.principal_id].move_to_end(session_id)
        return session

    async def save(self, session: Session) -> None:
        if session.id in self._sessions:
            self._sessions[session.id] = session

    async def delete(self, session_id: str) -> bool:
        return self._remove(session_id) is not None

    async def close(self) -> None:
        self._sessions.clear()
        self._by_key.clear()

    def count_for(self, principal_id: str) -> int:
        return len(self._by_key.get(principal_id, ()))

    def __len__(self) -> int:
        return len(self._sessions)
