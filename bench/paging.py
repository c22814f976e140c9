"""What one page of books costs: `books(first: 20)` straight to the ASGI app in this process.

Usage:
    BOOKWORM_DATABASE_URL=postgresql://... BOOKWORM_REDIS_URL=redis://... \\
        python bench/paging.py [--requests 500] [--rounds 5] [--profile FILE]

In this process, no server: a scratch database and Redis prefix, the container with its workers, 25 books
created through the API (so a page of 20 is full), then rounds of --requests page queries sent one after
another to the ASGI callable, the query compare.py sends (`{ books(first: 20) { edges { node { id name
price status version } } } }`); the response cache is off, so each reads PostgreSQL. Prints the median
round's wall and CPU time (this process only) per request and the best round's CPU time (the round the
machine's other work added least to). With --profile it also runs one more round under cProfile and writes
its stats to FILE (read them with `python -m pstats FILE`). Run it against another checkout's `app` with
`PYTHONPATH=that/checkout` to compare two versions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import statistics
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench's own helpers (_scratch, tracing)

from tracing import CREATE_BOOK, SECRET, SEED, App, call, post, round_of, scratch_settings

from app.bootstrap import container
from app.identity import ADMIN, CUSTOMER
from app.identity.tokens import issue
from app.main import create_app
from app.memory import freeze_startup_objects
from app.settings import Settings

PAGE = "{ books(first: 20) { edges { node { id name price status version } } } }"
BOOKS = 25


async def seed(app: App, state: dict[str, Any], token: str) -> None:
    """Create BOOKS books and wait until the read model lists them all."""
    named = await post(app, state, token, SEED, {"name": "Ursula K. Le Guin"})
    common = {
        "description": "Shevek.",
        "priceSale": None,
        "categoryId": named["createCategory"]["categoryId"],
        "publisherId": named["createPublisher"]["publisherId"],
        "authorIds": [named["createAuthor"]["authorId"]],
    }
    for n in range(BOOKS):
        book = common | {"name": f"The Dispossessed {n:02}", "price": f"{11 + n}.50"}
        await post(app, state, token, CREATE_BOOK, {"input": book})
    count = "{ books(first: 100) { totalCount } }"
    for _ in range(400):
        if (await post(app, state, token, count, {}))["books"]["totalCount"] == BOOKS:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the books never reached the read model")


async def measure(
    args: argparse.Namespace, settings: Settings, state: dict[str, Any]
) -> list[tuple[float, float]]:
    token = issue(SECRET, subject="bench", name="Bench", roles=(ADMIN, CUSTOMER))
    app = create_app(settings, workers=False)
    await seed(app, state, token)
    body = json.dumps({"query": PAGE}).encode()
    reply = json.loads(await call(app, state, body, token))
    if "errors" in reply or len(reply["data"]["books"]["edges"]) != 20:
        raise RuntimeError(reply)
    await round_of(app, state, token, body, args.requests // 4, lambda: None)  # warm-up
    reply = json.loads(await call(app, state, body, token))
    if "errors" in reply:  # e.g. refused by the client's budget: the rounds would measure the refusal
        raise RuntimeError(reply)
    freeze_startup_objects()  # as an API process does once it has started (app/memory.py)
    rounds = [
        await round_of(app, state, token, body, args.requests, lambda: None) for _ in range(args.rounds)
    ]
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        await round_of(app, state, token, body, args.requests, lambda: None)
        profile.disable()
        profile.dump_stats(args.profile)
    return rounds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="queries per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds")
    parser.add_argument("--profile", metavar="FILE", help="profile one more round; write its stats here")
    args = parser.parse_args()
    async with AsyncExitStack() as stack:
        settings = await scratch_settings(stack, "bench_paging")
        built = await stack.enter_async_context(container(settings, workers=True))
        rounds = await measure(args, settings, {"container": built})
    cpu = [c for _, c in rounds]
    print(
        f"books(first: 20), {args.requests} sequential requests per round, {args.rounds} rounds, in process"
    )
    wall, median = statistics.median(w for w, _ in rounds) * 1e6, statistics.median(cpu) * 1e6
    print(f"wall µs/req {wall:.1f}  CPU µs/req {median:.1f}  best CPU {min(cpu) * 1e6:.1f}")
    print("rounds, CPU µs/req: " + " ".join(f"{c * 1e6:.0f}" for c in cpu))


if __name__ == "__main__":
    asyncio.run(main())
