"""Rate-limit counters in Redis: one script call per charge, however many windows.

The script reads Redis's own clock (one clock for every instance), weighs each window's
previous count the way ``limits``' sliding-window counter does, and either adds ``cost`` to
every window or to none. It answers with what each window has left and when it next frees a
unit, so the ``RateLimit`` fields cost no second round trip.

Charges that arrive while the event loop is busy are sent together: every charge waiting
when the loop comes round goes out in one pipeline (one write, one read), each still its own
atomic script call. Under load that is most of the per-request cost of Redis saved; alone, a
charge waits for nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from skywarden.server.calls.counters import CountersUnavailable, Outcome, Windows, WindowState

# ARGV: cost, key base, then amount and window seconds per window.
# Returns: index of the refused window (0 = taken), then remaining and reset seconds per window.
TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local cost = tonumber(ARGV[1])
local base = ARGV[2]
local n = (#ARGV - 2) / 2
local keys, amounts, counts, prevs, curs, left = {}, {}, {}, {}, {}, {}
local refused = 0
for i = 1, n do
  local amount = tonumber(ARGV[1 + 2 * i])
  local size = tonumber(ARGV[2 + 2 * i])
  local bucket = math.floor(now / size)
  local current_key = base .. ':' .. amount .. '/' .. size .. ':' .. bucket
  local previous = tonumber(redis.call('GET', base .. ':' .. amount .. '/' .. size .. ':' .. (bucket - 1)) or '0')
  local current = tonumber(redis.call('GET', current_key) or '0')
  local previous_left = size - (now - bucket * size)
  keys[i], amounts[i], prevs[i], curs[i], left[i] = current_key, amount, previous, current, previous_left
  counts[i] = previous * previous_left / size + current
  if refused == 0 and counts[i] >= amount - cost + 1 then
    refused = i
  end
end
local answer = {refused}
for i = 1, n do
  local size = tonumber(ARGV[2 + 2 * i])
  if refused == 0 then
    redis.call('INCRBY', keys[i], cost)
    redis.call('EXPIRE', keys[i], 2 * size)
    counts[i] = counts[i] + cost
    curs[i] = curs[i] + cost
  end
  local reset = math.huge
  if prevs[i] > 0 then
    reset = left[i] % (size / prevs[i])
  end
  if curs[i] > 0 then
    reset = math.min(reset, left[i])
  end
  if reset == math.huge then
    reset = 0
  end
  answer[#answer + 1] = math.max(0, amounts[i] - math.floor(counts[i]))
  answer[#answer + 1] = math.ceil(reset)
end
return answer
"""


class _Pipelined:
    """Run one script for many callers: those that call within one turn of the loop share a pipeline."""

    def __init__(self, client: Any, source: str) -> None:
        self.client = client
        self.script = client.register_script(source)
        self._waiting: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def __call__(self, args: list[Any]) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((args, future))
        if len(self._waiting) == 1:
            asyncio.get_running_loop().call_soon(self._send_waiting)
        return await future

    def _send_waiting(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _run(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for args, _ in batch:
            pipe.evalsha(self.script.sha, 0, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def _send(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        from redis.exceptions import NoScriptError

        try:
            answers = await self._run(batch)
            if any(isinstance(a, NoScriptError) for a in answers):  # Redis restarted: its script cache is empty
                await self._load()
                answers = await self._run(batch)
        except Exception as exc:
            answers = [exc] * len(batch)
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    async def _load(self) -> None:
        await self.client.script_load(self.script.script)


class RedisCounters:
    """Counters every instance shares; ``key_prefix`` keeps deployments (and test runs) apart."""

    def __init__(self, client: Any, key_prefix: str) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self._take = _Pipelined(client, TAKE)

    async def take(self, scope: str, identity: str, windows: Windows, cost: int) -> Outcome:
        args: list[Any] = [cost, f"{self.key_prefix}:limits:{scope}:{identity}"]
        for window in windows:
            args += [window.amount, window.get_expiry()]
        try:
            answer = await self._take(args)
        except Exception as exc:  # connection refused, timeout, Redis error: all mean "not reachable"
            raise CountersUnavailable(type(exc).__name__) from None
        refused = windows[answer[0] - 1] if answer[0] else None
        states = tuple(
            WindowState(window, int(answer[1 + 2 * i]), int(answer[2 + 2 * i])) for i, window in enumerate(windows)
        )
        return Outcome(refused, states)

    async def reachable(self) -> bool:
        try:
            return bool(await self.client.ping())
        except Exception:
            return False
