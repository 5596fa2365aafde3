"""Waiting for something another task does, with a deadline instead of a fixed sleep."""

import asyncio
import itertools
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], bool], within_s: float = 10.0) -> None:
    """Return as soon as ``check()`` is true; ``TimeoutError`` after *within_s* seconds."""
    async with asyncio.timeout(within_s):
        for _ in itertools.count():
            if check():
                return
            await asyncio.sleep(0.02)


async def eventually_async(check: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    """As ``eventually`` for a check that must itself await (e.g. an HTTP call)."""
    async with asyncio.timeout(within_s):
        for _ in itertools.count():
            if await check():
                return
            await asyncio.sleep(0.02)
