"""Rate limits: a budget of points per caller per window, GitHub's way.

A window starts with the caller's first request and lasts ``rate_limit_window_seconds``;
a request is charged its points only if they fit in what is left (a refused request
costs nothing, so a caller with 3 points left can still make cheap requests). Counts
live in the process (the embedded default) or in Redis, shared by every api process,
where one Lua script checks and charges atomically."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from backend.core.errors import BacklineError
from backend.core.settings import Settings

logger = logging.getLogger("backline.graphql")

# The in-process store forgets the oldest callers beyond this many (a flood of addresses
# must not grow the process without bound; a forgotten caller starts a fresh window).
MEMORY_KEYS = 100_000


@dataclass(frozen=True)
class Charge:
    """The outcome of charging ``cost`` points against a budget of ``limit``."""

    allowed: bool
    cost: int
    used: int
    limit: int
    reset_at: float  # epoch seconds

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def retry_after(self) -> int:
        """Whole seconds until the window ends (at least 1)."""
        return max(1, int(self.reset_at - time.time() + 0.999))

    @property
    def reset_at_iso(self) -> str:
        moment = datetime.fromtimestamp(self.reset_at, UTC).replace(microsecond=0)
        return moment.isoformat().replace("+00:00", "Z")

    def report(self) -> dict[str, Any]:
        """``extensions.rateLimit`` of the response."""
        return {
            "limit": self.limit,
            "cost": self.cost if self.allowed else 0,
            "remaining": self.remaining,
            "resetAt": self.reset_at_iso,
        }


class Store(Protocol):
    async def charge(self, key: str, points: int, limit: int, window: int) -> Charge: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """Counts in this process. No lock: check and charge happen without an await between."""

    def __init__(self, *, clock: Callable[[], float] = time.time, max_keys: int = MEMORY_KEYS):
        self._clock = clock
        self._max_keys = max_keys
        # key -> [used, window end]; in order of window start, so of window end too.
        self._windows: OrderedDict[str, list[float]] = OrderedDict()

    async def charge(self, key: str, points: int, limit: int, window: int) -> Charge:
        return self.charge_now(key, points, limit, window)

    def charge_now(self, key: str, points: int, limit: int, window: int) -> Charge:
        now = self._clock()
        self._forget_ended(now)
        entry = self._windows.get(key)
        if entry is None or entry[1] <= now:
            self._windows.pop(key, None)
            entry = self._windows[key] = [0, now + window]
            while len(self._windows) > self._max_keys:
                self._windows.popitem(last=False)
        used, reset_at = int(entry[0]), entry[1]
        if used + points > limit:
            return Charge(False, points, used, limit, reset_at)
        entry[0] = used + points
        return Charge(True, points, used + points, limit, reset_at)

    def _forget_ended(self, now: float) -> None:
        while self._windows:
            key, entry = next(iter(self._windows.items()))
            if entry[1] > now:
                return
            del self._windows[key]

    async def aclose(self) -> None:
        self._windows.clear()


# KEYS[1] the caller's counter; ARGV points, limit, window (ms). Returns {allowed, used,
# ms left}. A counter without an expiry (it cannot happen, but would never reset) starts
# a new window.
_CHARGE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  used = 0
  ttl = tonumber(ARGV[3])
end
local points = tonumber(ARGV[1])
if used + points > tonumber(ARGV[2]) then
  return {0, used, ttl}
end
if used == 0 then
  redis.call('SET', KEYS[1], points, 'PX', ttl)
else
  redis.call('INCRBY', KEYS[1], points)
end
return {1, used + points, ttl}
"""


class RedisStore:
    """Counts in Redis under ``<redis_prefix>:ratelimit:``. When Redis does not answer,
    this process counts alone meanwhile (limits stay, per process) rather than refusing
    every request or letting every one through."""

    def __init__(self, url: str, *, prefix: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._script = self._redis.register_script(_CHARGE)
        self.prefix = f"{prefix}:ratelimit:"
        self._fallback = MemoryStore()

    async def charge(self, key: str, points: int, limit: int, window: int) -> Charge:
        from redis.exceptions import RedisError

        try:
            allowed, used, ttl_ms = await self._script(
                keys=[self.prefix + key], args=[points, limit, window * 1000]
            )
        except (RedisError, OSError):
            logger.warning("rate limits: Redis unreachable, counting in this process meanwhile")
            return self._fallback.charge_now(key, points, limit, window)
        return Charge(bool(allowed), points, int(used), limit, time.time() + int(ttl_ms) / 1000)

    async def aclose(self) -> None:
        await self._redis.aclose()


def create_store(settings: Settings) -> Store:
    if settings.redis_url:
        return RedisStore(settings.redis_url, prefix=settings.redis_prefix)
    return MemoryStore()


def caller_key(context: Any) -> tuple[str, bool]:
    """(the budget's key, whether the caller is signed in): an API token has its own
    budget, apart from its user's; a signed-out caller (or a bad token) counts by address.

    ``context.caller`` and ``context.client_ip`` are read defensively: while they are not
    there, the signed-in user is ``context.viewer_id`` and the address the request's."""
    try:
        caller = context.caller
    except AttributeError:  # not there yet: the viewer is who signed the access token
        caller = _Viewer(context)
    except BacklineError:  # a bad token: signed out, as far as budgets go
        caller = None
    token_id = getattr(caller, "api_token_id", None)
    if token_id is not None:
        return f"token:{token_id}", True
    user_id = getattr(caller, "user_id", None)
    if user_id is not None:
        return f"user:{user_id}", True
    return f"ip:{_address(context)}", False


class _Viewer:
    api_token_id = None

    def __init__(self, context: Any) -> None:
        try:
            self.user_id = context.viewer_id
        except BacklineError:
            self.user_id = None


def _address(context: Any) -> str:
    address = getattr(context, "client_ip", None)
    if not address:
        request = getattr(context, "request", None)
        client = getattr(request, "client", None)
        address = getattr(client, "host", None)
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        # One host gets a whole /64; counting its addresses apart would not limit it.
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
