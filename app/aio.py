"""asyncio helpers shared by the long-running loops."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended."""
    pending = set(tasks)
    while pending:
        # Cancel again until they are done: Python 3.11's wait_for (inside asyncpg and redis-py) can
        # lose a cancellation that arrives as the awaited operation completes.
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
