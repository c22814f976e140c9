"""What one request's span costs on its own: the request middleware in front of an app that does nothing.

Usage:
    python bench/tracing_span.py [--requests 20000]

No server, no database: app.tracing's RequestSpans around an ASGI app that only answers (inside
`tracing.operation("query", ...)` and `tracing.untraced()`, as a query and its budget charge are), with
the SDK, a batch span processor and an exporter that encodes each batch to OTLP (the SDK's encoder) and
drops it. Prints CPU µs per request over the bare app with every trace recorded and with none (what the
plumbing costs), and the OTLP encoding of one such span by the SDK's encoder; each the best round of
1,000 requests (the round the machine's other work added least to). A loop
this small runs hot in the CPU's caches: inside the real app (bench/tracing.py) each costs more.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any, cast

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from app import tracing

SCOPE = {
    "type": "http",
    "path": "/graphql",
    "method": "POST",
    "headers": [(b"host", b"bench"), (b"content-type", b"application/json"), (b"authorization", b"Bearer x")],
}
ROUND = 1000  # requests per timed round: fewer than the batch processor's queue holds


class Encoding(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializePartialToString()
        return SpanExportResult.SUCCESS


async def answer(scope: Any, receive: Any, send: Any) -> None:
    with tracing.untraced(), tracing.operation("query", "Book"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Any) -> None:
    pass


async def cpu_per_request(app: Any, requests: int, flush: Any = None) -> float:
    """CPU seconds per request of the best of several rounds of ROUND requests (each round's spans
    exported in it, before the batch processor's queue could fill and drop any)."""
    best = float("inf")
    for _ in range(max(2, requests // ROUND)):
        cpu = time.process_time()
        for _ in range(ROUND):
            await app(SCOPE, receive, send)
        if flush:
            flush()  # the exporter's encoding, counted
        best = min(best, time.process_time() - cpu)
    return best / ROUND


async def traced(ratio: float, requests: int) -> float:
    provider = TracerProvider(sampler=tracing.sampler(ParentBased(TraceIdRatioBased(ratio))))
    provider.add_span_processor(BatchSpanProcessor(Encoding()))
    tracing.install(provider)
    try:
        (middleware,) = tracing.asgi_middleware()
        return await cpu_per_request(
            tracing.RequestSpans(answer, **middleware.kwargs), requests, provider.force_flush
        )
    finally:
        tracing.uninstall()
        provider.shutdown()


def encoding(requests: int) -> float:
    """CPU seconds per span to encode a request's span with the SDK's encoder."""
    tracer = TracerProvider().get_tracer(tracing.SERVICE_NAME)
    attributes: dict[str, str | int] = {"http.response.status_code": 200}  # what RequestSpans records
    attributes |= {"graphql.operation.type": "query", "graphql.operation.name": "Book"}
    spans: list[ReadableSpan] = []
    for _ in range(512):
        span = tracer.start_span("POST /graphql", kind=SpanKind.SERVER, attributes=attributes)
        span.end()
        spans.append(cast(ReadableSpan, span))  # the SDK's spans are
    batches = max(1, requests // 512)
    cpu = time.process_time()
    for _ in range(batches):
        encode_spans(spans).SerializePartialToString()
    return (time.process_time() - cpu) / batches / len(spans)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    requests = parser.parse_args().requests
    bare = await cpu_per_request(answer, requests)
    every, none = await traced(1.0, requests), await traced(0.0, requests)
    encoded = encoding(requests)
    print(f"request span, every trace recorded: {(every - bare) * 1e6:6.1f} µs a request")
    print(f"request span, none recorded:        {(none - bare) * 1e6:6.1f} µs a request")
    print(f"OTLP encoding of that span (the SDK's encoder): {encoded * 1e6:.1f} µs")


if __name__ == "__main__":
    asyncio.run(main())
