"""Handshake-era sessions: random ids bound to the principal that opened them.

``SessionStore`` is the interface; ``MemorySessionStore`` keeps sessions in
this process with idle expiry and a cap. A shared store (Redis) implements the
same four calls for several instances.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class TooManySessions(RuntimeError):
    pass


@dataclass
class Session:
    id: str
    principal_id: str
    protocol_version: str
    client_info: dict[str, Any] = field(default_factory=dict)
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    last_seen: float = 0.0
    initialized: bool = False


class SessionStore(Protocol):
    async def create(
        self, principal_id: str, protocol_version: str, client_info: dict[str, Any], capabilities: dict[str, Any]
    ) -> Session: ...
    async def get(self, session_id: str) -> Session | None: ...
    async def save(self, session: Session) -> None: ...
    async def delete(self, session_id: str) -> bool: ...
    async def close(self) -> None: ...
    def __len__(self) -> int: ...


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


class MemorySessionStore:
    def __init__(self, idle_timeout: float, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently seen first

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.idle_timeout

    def _sweep(self, now: float) -> None:
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if not self._expired(oldest, now):
                break
            del self._sessions[oldest.id]

    async def create(
        self, principal_id: str, protocol_version: str, client_info: dict[str, Any], capabilities: dict[str, Any]
    ) -> Session:
        now = self._clock()
        self._sweep(now)
        if len(self._sessions) >= self.max_sessions:
            raise TooManySessions()
        session = Session(new_session_id(), principal_id, protocol_version, client_info, capabilities, now, now)
        self._sessions[session.id] = session
        return session

    async def get(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if self._expired(session, now):
            del self._sessions[session_id]
            return None
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        return session

    async def save(self, session: Session) -> None:
        if session.id in self._sessions:
            self._sessions[session.id] = session

    async def delete(self, session_id: str) -> bool:
        return self._sessions.pop(session_id, None) is not None

    async def close(self) -> None:
        self._sessions.clear()

    def __len__(self) -> int:
        return len(self._sessions)
