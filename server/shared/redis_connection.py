"""One Redis connection pool per process, for counters, sessions and the broadcast."""

from __future__ import annotations

from typing import Any

REDIS_TIMEOUT_SECONDS = 2.0  # a request waits at most this long on Redis before the failure rule applies
REDIS_MAX_CONNECTIONS = 64  # per process; a request waits for a free one rather than opening more


def redis_client(url: str) -> Any:
    """A pooled client that fails fast: an unreachable Redis must not hold requests for long."""
    import redis.asyncio as redis

    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        health_check_interval=30,
    )
    return redis.Redis.from_pool(pool)  # closing the client closes the pool
