"""Give memory freed after a burst back to the operating system.

glibc's malloc returns freed memory at the top of its heap only: after a burst of connections (a
handshake flood, a thousand subscribers leaving) most of the heap is free but stays resident, and the
process looks as if it leaked. `malloc_trim(0)` releases the free pages anywhere in the heap. It costs
a few milliseconds on a large heap, so it runs on a timer, not after every request. Elsewhere (musl,
macOS) there is nothing to call and this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

TRIM_EVERY = 15.0  # seconds


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


async def release_free_memory(every: float = TRIM_EVERY) -> None:
    """Hand free heap pages back to the operating system every `every` seconds, until cancelled."""
    trim = _malloc_trim()
    if trim is None:
        return
    while True:
        await asyncio.sleep(every)
        trim(0)
