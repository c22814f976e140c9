"""Instructions per `createBook` or `createAuthor` through the ASGI app, counted by callgrind.

Usage:
    BOOKWORM_DATABASE_URL=postgresql://... BOOKWORM_REDIS_URL=redis://... \\
        python bench/write_instructions.py [--op book|author] [--requests 100] [--rounds 1]   # needs valgrind

In one process under valgrind's callgrind (about two minutes for 100 requests): a scratch database and Redis
prefix, the API's container without workers (nothing relays or applies the events; the append, the budget's
Redis call and everything else on a write's path in the API process are counted), and the app as
`bookworm serve`'s API processes build it. An author, a category and a publisher are created, then 200
writes warm the process (the book's targets are kept from the first: app/commands/targets.py), then each
round sends --requests writes one after another straight to the ASGI callable (no HTTP client, no uvicorn)
with the budgets out of reach, and callgrind counts each round alone. Prints instructions per write of
each round: this process only (PostgreSQL's and Redis's work is not counted), and the same from run to run
within about 1 %, where CPU time on this machine moves by tens of per cent.

The counts complement `write_cpu.py`'s CPU per write under load (which includes HTTP and uvicorn); they
resolve a change of a few per cent on the path a write takes in the API process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench's own helpers (tracing)

from tracing import CREATE_BOOK, SECRET, SEED, _summary, book_input, call, mark, post, scratch_settings

from app.bootstrap import container
from app.identity import ADMIN, CUSTOMER
from app.identity.tokens import issue
from app.main import create_app
from app.memory import freeze_startup_objects

CREATE_AUTHOR = """
mutation($input: CreateAuthorInput!) {
  createAuthor(input: $input) { ... on CreateAuthorSuccess { authorId } }
}"""
WARM_UP = 200


async def rounds(args: argparse.Namespace) -> None:
    """Seed, warm up, then send each round's writes between two callgrind dumps."""
    token = issue(SECRET, subject="bench", name="Bench", roles=(ADMIN, CUSTOMER))
    async with AsyncExitStack() as stack:
        settings = await scratch_settings(stack, "bench_write_instructions")
        built = await stack.enter_async_context(container(settings, workers=False))
        app, state = create_app(settings, workers=False), {"container": built}
        named = await post(app, state, token, SEED, {"name": "Ursula K. Le Guin"})
        if args.op == "book":
            book = book_input(named, "The Dispossessed")
            body = json.dumps({"query": CREATE_BOOK, "variables": {"input": book}}).encode()
        else:
            body = json.dumps({"query": CREATE_AUTHOR, "variables": {"input": {"name": "Le Guin"}}}).encode()
        for _ in range(WARM_UP):
            reply = await call(app, state, body, token)
        freeze_startup_objects()  # as an API process does once it has started (app/memory.py)
        for _ in range(args.rounds):
            mark()
            for _ in range(args.requests):
                reply = await call(app, state, body, token)
            mark()
            if b'"errors"' in reply:
                raise RuntimeError(f"the round's last answer is an error: {reply[:300]!r}")


def counted(args: argparse.Namespace) -> list[float]:
    """Run the rounds under callgrind; return each round's instructions per write."""
    if shutil.which("valgrind") is None:
        raise SystemExit("this needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as out:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.out"]
        command += ["--dump-before=getpriority", sys.executable, __file__, "--markers", f"--op={args.op}"]
        command += [f"--requests={args.requests}", f"--rounds={args.rounds}"]
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ)
        if done.returncode != 0:
            raise SystemExit(f"the run under valgrind failed:\n{done.stderr[-3000:]}")
        dumps = sorted(Path(out).glob("callgrind.out.*"), key=lambda path: int(path.suffix[1:]))
        if len(dumps) < 2 * args.rounds:
            raise SystemExit(
                f"{len(dumps)} dumps for {args.rounds} rounds: does something else call getpriority?"
            )
        return [_summary(path) / args.requests for path in dumps[1 : 2 * args.rounds : 2]]  # each round's end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", choices=("book", "author"), default="book", help="createBook or createAuthor")
    parser.add_argument("--requests", type=int, default=100, help="writes per round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--markers", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.markers:
        asyncio.run(rounds(args))
        return
    counts = counted(args)
    print(
        f"create{args.op.title()}, {args.requests} writes per round, in process under callgrind, no workers"
    )
    print("instructions per write, each round: " + " ".join(f"{count:,.0f}" for count in counts))


if __name__ == "__main__":
    main()
