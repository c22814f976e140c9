"""A lean closed-loop HTTP/1.1 load generator: keep-alive connections sending pre-encoded requests.

httpx spends about a millisecond of CPU per request, which on a small machine is taken from the server
being measured. Here each connection writes the bytes of its next request, reads the head up to the
blank line and the body by its Content-Length; an answer is parsed further only when it failed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

STALL = 30.0  # seconds a request may go unanswered after the window before it counts as failed
_LENGTH = b"\r\ncontent-length:"
_SLOT = "\x00slot\x00"  # stands in a template's variables for what each request fills in
_TYPENAME = re.compile(rb'"__typename":\s*"(\w+)"')
# Every request of this process has its own number: unique names and stream ids across rounds.
_numbers = itertools.count()


class BadAnswer(Exception):
    """An HTTP answer this generator cannot read (no Content-Length)."""


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: host, port and path of an http:// URL."""

    host: str
    port: int
    path: str

    @classmethod
    def of(cls, url: str) -> Endpoint:
        """Parse `url`; a URL without a path means /graphql."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"expected http://host:port/path, not {url!r}")
        return cls(parts.hostname, parts.port, parts.path or "/graphql")

    def head(self, headers: Mapping[str, str]) -> bytes:
        """Return the head of a keep-alive JSON POST up to the Content-Length value."""
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\n{extra}Content-Length: "
        ).encode()

    def graphql(self, query: str, variables: Mapping[str, Any], headers: Mapping[str, str]) -> bytes:
        """Return the bytes of a GraphQL POST."""
        body = json.dumps({"query": query, "variables": variables}).encode()
        return b"%s%d\r\n\r\n%s" % (self.head(headers), len(body), body)


# The bytes of request number n.
Requests = Callable[[int], bytes]


def cycling(requests: Sequence[bytes]) -> Requests:
    """Send `requests` in turn."""
    return lambda number: requests[number % len(requests)]


def numbered(
    endpoint: Endpoint, query: str, variables: Callable[[str], Mapping[str, Any]], headers: Mapping[str, str]
) -> Requests:
    """Send `query` with `variables(slot)`, the slot replaced in each request by the request's number."""
    body = json.dumps({"query": query, "variables": variables(_SLOT)}).encode()
    before, _, after = body.partition(json.dumps(_SLOT)[1:-1].encode())
    head = endpoint.head(headers)
    size = len(before) + len(after)

    def request(number: int) -> bytes:
        digits = b"%d" % number
        return b"%s%d\r\n\r\n%s%s%s" % (head, size + len(digits), before, digits, after)

    return request


@dataclass(frozen=True)
class Operation:
    """What to send, how to tell a good answer, and who sees each good answer's body."""

    requests: Requests
    success: bytes = b'"data"'  # a good answer holds these bytes (and no "errors")
    seen: Callable[[bytes, float], None] | None = None  # (body, perf_counter when it was read)


@dataclass
class Outcome:
    """What one window observed."""

    latencies: list[float] = field(default_factory=list)  # seconds, good answers only
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


class Connection:
    """One keep-alive HTTP/1.1 connection, opened again after an answer it could not read."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[bytes, bytes]:
        """Send `request`; return the answer's status code and body. Closes itself when it fails."""
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.endpoint.host, self.endpoint.port)
        self._writer.write(request)
        try:
            head = (await self._reader.readuntil(b"\r\n\r\n")).lower()
            at = head.find(_LENGTH)
            if at < 0:
                raise BadAnswer("no Content-Length")
            start = at + len(_LENGTH)
            body = await self._reader.readexactly(int(head[start : head.index(b"\r\n", start)]))
        except BaseException:
            self.close()
            raise
        if b"\r\nconnection: close" in head:
            self.close()
        return head[9:12], body

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def closed_loop(connections: Sequence[Connection], operation: Operation, duration: float) -> Outcome:
    """Each connection sends one request after another for `duration` s; in-flight ones finish."""
    outcome = Outcome()
    deadline = time.perf_counter() + duration
    tasks = [asyncio.create_task(_send(c, operation, deadline, outcome)) for c in connections]
    _, stalled = await asyncio.wait(tasks, timeout=duration + STALL)
    for task in stalled:
        task.cancel()
        outcome.errors[f"no answer in {STALL:g} s"] += 1
    for connection, task in zip(connections, tasks, strict=True):
        if task in stalled:
            connection.close()
    return outcome


async def _send(connection: Connection, operation: Operation, deadline: float, outcome: Outcome) -> None:
    requests, success, seen = operation.requests, operation.success, operation.seen
    latencies, errors, clock = outcome.latencies, outcome.errors, time.perf_counter
    while (started := clock()) < deadline:
        try:
            status, body = await connection.exchange(requests(next(_numbers)))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, BadAnswer, ValueError) as e:
            errors[type(e).__name__] += 1
            await asyncio.sleep(0.01)  # a refused connection fails at once: no busy loop
            continue
        ended = clock()
        if status == b"200" and success in body and b'"errors"' not in body:
            latencies.append(ended - started)
            if seen is not None:
                seen(body, ended)
        else:
            errors[failure(status, body)] += 1


def failure(status: bytes, body: bytes) -> str:
    """Name what went wrong with an answer: its HTTP status, its first error's code, or its union member."""
    if status != b"200":
        return f"HTTP {status.decode(errors='replace')}"
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, AttributeError):
        return "not a JSON object"
    if errors:
        code = (errors[0].get("extensions") or {}).get("code")
        return str(code or errors[0].get("message", "error"))[:60]
    found = _TYPENAME.search(body)
    return found.group(1).decode() if found else "unexpected answer"


def string_field(body: bytes, name: bytes) -> str | None:
    """Return the first string value of field `name` in a JSON `body`, without parsing the rest."""
    at = body.find(b'"%s"' % name)
    if at < 0:
        return None
    start = body.find(b'"', body.index(b":", at + len(name) + 2)) + 1
    return body[start : body.index(b'"', start)].decode()
