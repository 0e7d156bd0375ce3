"""Handshake-era sessions in Redis: opened through one instance, continued through any other,
and still there after the instance that opened them restarts.

Same contract and bounds as ``MemorySessionStore``: a key holds at most ``max_per_key``
sessions; when the whole store holds ``max_sessions``, a new session takes the place of the
least recently used session of the key holding the most; a session idle for
``idle_timeout`` is gone. Each decision is one Lua script, so instances racing to open
sessions for one key cannot exceed its allowance. Time is Redis's clock, one for all.

Layout under ``<prefix>:sessions``: ``:s:<id>`` a hash (the bounded fields of ``Session``,
expiring with the session), ``:all`` a sorted set of ``<key id> <session id>`` by last use,
``:k:<key id>`` each key's sessions by last use, ``:counts`` sessions per key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import structlog

from skywarden.server.errors import SESSIONS_UNAVAILABLE, ApiError
from skywarden.server.mcp.sessions import Session, TooManySessions, new_session

log = structlog.get_logger("skywarden.server")
_COMMON = """
local base = KEYS[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local function remove(key_id, session_id)
  redis.call('DEL', base .. ':s:' .. session_id)
  redis.call('ZREM', base .. ':all', key_id .. ' ' .. session_id)
  redis.call('ZREM', base .. ':k:' .. key_id, session_id)
  if tonumber(redis.call('ZINCRBY', base .. ':counts', -1, key_id)) <= 0 then
    redis.call('ZREM', base .. ':counts', key_id)
  end
end
local function sweep(idle)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', base .. ':all', '-inf', now - idle, 'LIMIT', 0, 1000)) do
    local space = string.find(member, ' ', 1, true)
    remove(string.sub(member, 1, space - 1), string.sub(member, space + 1))
  end
end
local function touch(key_id, session_id, idle)
  redis.call('ZADD', base .. ':all', now, key_id .. ' ' .. session_id)
  redis.call('ZADD', base .. ':k:' .. key_id, now, session_id)
  redis.call('EXPIRE', base .. ':s:' .. session_id, math.ceil(idle))
end
"""

# ARGV: session id, key id, idle seconds, max sessions, max per key, then the hash's field/value pairs.
# Returns {0, sessions in all} when created, {1, held} when the key is at its allowance,
# {2, held} when the store is full and no key holds more than this one.
CREATE = (
    _COMMON
    + """
local session_id, key_id = ARGV[1], ARGV[2]
local idle, max_all, max_per_key = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
sweep(idle)
local held = redis.call('ZCARD', base .. ':k:' .. key_id)
if held >= max_per_key then
  return {1, held}
end
if redis.call('ZCARD', base .. ':all') >= max_all then
  local largest = redis.call('ZREVRANGE', base .. ':counts', 0, 0, 'WITHSCORES')
  if largest[1] == key_id or tonumber(largest[2]) <= held then
    return {2, held}
  end
  local oldest = redis.call('ZRANGE', base .. ':k:' .. largest[1], 0, 0)
  remove(largest[1], oldest[1])
end
redis.call('HSET', base .. ':s:' .. session_id, unpack(ARGV, 6))
redis.call('ZINCRBY', base .. ':counts', 1, key_id)
touch(key_id, session_id, idle)
return {0, redis.call('ZCARD', base .. ':all')}
"""
)

# ARGV: session id, idle seconds. Returns the hash's field/value pairs, or {} when there is no such session.
GET = (
    _COMMON
    + """
local session_id, idle = ARGV[1], tonumber(ARGV[2])
local fields = redis.call('HGETALL', base .. ':s:' .. session_id)
if #fields == 0 then
  return {}
end
local session = {}
for i = 1, #fields, 2 do
  session[fields[i]] = fields[i + 1]
end
local last = redis.call('ZSCORE', base .. ':k:' .. session.principal_id, session_id)
if not last or now - tonumber(last) > idle then
  remove(session.principal_id, session_id)
  return {}
end
touch(session.principal_id, session_id, idle)
return fields
"""
)

# ARGV: session id. Returns 1 when a session was removed.
DELETE = (
    _COMMON
    + """
local key_id = redis.call('HGET', base .. ':s:' .. ARGV[1], 'principal_id')
if not key_id then
  return 0
end
remove(key_id, ARGV[1])
return 1
"""
)

# ARGV: session id. Marks an existing session initialized.
INITIALIZED = """
if redis.call('EXISTS', KEYS[1] .. ':s:' .. ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1] .. ':s:' .. ARGV[1], 'initialized', '1')
end
return 0
"""


SESSION_RETRY_SECONDS = 5
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # what new_session_id makes; anything else is no session


class SessionStoreUnavailable(ApiError):
    """Redis could not be reached for a session: 503 with Retry-After."""

    def __init__(self) -> None:
        super().__init__(
            SESSIONS_UNAVAILABLE,
            "The session store cannot be reached; try again shortly.",
            headers={"Retry-After": str(SESSION_RETRY_SECONDS)},
        )


def _fields(session: Session) -> list[str]:
    return [
        "principal_id", session.principal_id,
        "protocol_version", session.protocol_version,
        "capability_names", json.dumps(sorted(session.capability_names)),
        "client_name", session.client_name,
        "client_version", session.client_version,
        "initialized", "1" if session.initialized else "0",
    ]  # fmt: skip


def _session(session_id: str, raw: list[bytes]) -> Session:
    fields = {raw[i].decode(): raw[i + 1].decode() for i in range(0, len(raw), 2)}
    return Session(
        id=session_id,
        principal_id=fields["principal_id"],
        protocol_version=fields["protocol_version"],
        capability_names=frozenset(json.loads(fields["capability_names"])),
        client_name=fields["client_name"],
        client_version=fields["client_version"],
        initialized=fields["initialized"] == "1",
    )


class RedisSessionStore:
    def __init__(
        self, client: Any, key_prefix: str, idle_timeout: float, max_sessions: int, max_per_key: int | None = None
    ) -> None:
        self.base = f"{key_prefix}:sessions"
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.max_per_key = max_per_key or max_sessions
        self._create = client.register_script(CREATE)
        self._get = client.register_script(GET)
        self._delete = client.register_script(DELETE)
        self._initialized = client.register_script(INITIALIZED)
        self._count = 0  # as of this instance's latest create; for the metrics gauge

    async def _run(self, script: Any, *args: Any) -> Any:
        try:
            return await script(keys=[self.base], args=list(args))
        except Exception as exc:
            log.warning("session store unreachable", error=type(exc).__name__)
            raise SessionStoreUnavailable() from None

    async def create(
        self, principal_id: str, protocol_version: str, client_info: Mapping[str, Any], capabilities: Mapping[str, Any]
    ) -> Session:
        session = new_session(principal_id, protocol_version, client_info, capabilities)
        outcome, count = await self._run(
            self._create,
            session.id,
            principal_id,
            self.idle_timeout,
            self.max_sessions,
            self.max_per_key,
            *_fields(session),
        )
        if outcome == 1:
            raise TooManySessions(self.max_per_key)
        if outcome == 2:
            raise TooManySessions(count)
        self._count = count
        return session

    async def get(self, session_id: str) -> Session | None:
        if not SESSION_ID.fullmatch(session_id):
            return None
        raw = await self._run(self._get, session_id, self.idle_timeout)
        return _session(session_id, raw) if raw else None

    async def save(self, session: Session) -> None:
        if session.initialized:
            await self._run(self._initialized, session.id)

    async def delete(self, session_id: str) -> bool:
        return bool(await self._run(self._delete, session_id))

    async def close(self) -> None:
        return None

    def __len__(self) -> int:
        return self._count
