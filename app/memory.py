"""Keep the process's memory work out of its clients' way: a garbage collector that does not rescan what
startup built, and memory freed after a burst given back to the operating system.

`freeze_startup_objects` moves everything alive once the application is built (modules, the GraphQL
schema, the container: some 120,000 objects) out of the collector's reach. A full collection then scans
only what requests created since, not 35-50 ms of objects that never die, which otherwise lands on
whichever request happens to allocate when the collector runs. A worker process does the same once its
workers have started: there a full collection took 60-90 ms, and every change in flight waited it out.
It also collects the youngest generation after 20,000 new container objects instead of 700: a
`book(id)` allocates a few thousand, most freed by reference counting within the request, so the default
ran a young collection several times per request over objects that were about to die anyway
(bench/README.md, "The collector's young generation": 1.6 % of a by-id request's instructions).

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
import gc
from collections.abc import Callable

TRIM_EVERY = 15.0  # seconds
YOUNG_GENERATION = 20_000  # new container objects between two collections of the youngest generation


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


def freeze_startup_objects() -> None:
    """Collect once, exempt every object alive now from later collections, and collect the youngest
    generation less often (see the module doc)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, older, oldest)
