"""asyncio helpers shared by the long-running loops."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to its end on uvloop where it is installed (as uvicorn runs the API processes), else on
    asyncio's own loop, as asyncio.run does.

    The worker's loop spends much of its time in socket writes and wake-ups: a statement, a stream read,
    a notice each; uvloop does those in C (bench/README.md, "The worker on uvloop").
    """
    try:
        import uvloop
    except ImportError:  # not built for every platform: requirements.lock installs it where it is
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended."""
    pending = set(tasks)
    while pending:
        # Cancel again until they are done: Python 3.11's wait_for (inside asyncpg and redis-py) can
        # lose a cancellation that arrives as the awaited operation completes.
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
