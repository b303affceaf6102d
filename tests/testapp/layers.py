"""Channel layers with the faults of real ones, made deterministic for the live tests."""

from __future__ import annotations

import asyncio

from channels_redis.core import RedisChannelLayer
from redis.exceptions import TimeoutError as RedisTimeoutError


class CancelAsTimeoutRedisLayer(RedisChannelLayer):
    """channels-redis whose ``receive``, when cancelled, raises redis' ``TimeoutError`` instead
    of ``CancelledError``: what Python 3.11's ``asyncio.timeout`` does when the cancellation and
    redis-py's read timeout (BZPOPMIN's 5 s block) fall at the same moment. A receive loop that
    retries on errors then never ends, and the worker hangs on SIGTERM."""

    async def receive(self, channel):
        try:
            return await super().receive(channel)
        except asyncio.CancelledError:
            raise RedisTimeoutError("Timeout reading from socket") from None
