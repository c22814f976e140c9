"""The bystander's process: read one book at a steady rate until standard input closes, then print what
it measured as JSON. Usage: python -m tests.abuse.bystander URL BOOK_ID RATE LOCAL_ADDRESS"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

import httpx

from tests.abuse.harness import BOOK_BY_ID, client

WARM_UP = 1.0


async def measure(base_url: str, book_id: str, rate: float, address: str) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    body = {"query": BOOK_BY_ID, "variables": {"id": book_id}}
    stop = asyncio.Event()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def until_stdin_closes() -> None:
        await reader.read()
        stop.set()

    watcher = asyncio.create_task(until_stdin_closes())
    async with client(base_url, address) as http:
        started = tick = loop.time()
        announced = False
        while not stop.is_set():
            start = loop.time()
            try:
                response = await http.post("/graphql", json=body)
                ok = response.status_code == 200 and response.json()["data"]["book"]["id"] == book_id
                outcomes["ok" if ok else f"status {response.status_code}"] += 1
            except httpx.HTTPError as error:
                outcomes[type(error).__name__] += 1
            if announced:
                latencies.append(loop.time() - start)
            elif loop.time() - started >= WARM_UP:
                outcomes.clear()
                print("ready", flush=True)
                announced = True
            tick += 1 / rate
            await asyncio.sleep(max(0.0, tick - loop.time()))
    watcher.cancel()
    return {"latencies": latencies, "outcomes": outcomes}


def main() -> None:
    url, book_id, rate, address = sys.argv[1:5]
    print(json.dumps(asyncio.run(measure(url, book_id, float(rate), address))), flush=True)


if __name__ == "__main__":
    main()
