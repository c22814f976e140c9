"""How each protocol of subscriptions over plain HTTP frames a stream: GraphQL over Server-Sent Events
(graphql-sse, distinct connections mode) and multipart subscriptions, on strawberry's encoders."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from strawberry.http import GraphQLHTTPResponse
from strawberry.http.streaming import MultipartSubscriptionTransport, SSETransport

# A multipart subscription answers in the form Apollo's router uses.
MULTIPART = 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0"'
NO_BUFFERING = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}

JSONEncoder = Callable[[object], str]


class Transport(Protocol):
    """How one streaming protocol frames a stream: its opening, results, keep-alives and end."""

    heartbeat_interval: float

    @property
    def headers(self) -> Mapping[str, str]: ...

    def accepts(self, accept: str) -> bool: ...

    def opening(self, encode_json: JSONEncoder) -> str: ...

    def encode_next(self, response: GraphQLHTTPResponse, encode_json: JSONEncoder) -> str: ...

    def heartbeat_message(self, encode_json: JSONEncoder) -> str: ...

    def encode_complete(self) -> str: ...

    def fatal(self, failure: dict[str, object], encode_json: JSONEncoder) -> str: ...


class SSE(SSETransport):
    """graphql-sse: a `next` event per result, then `complete`; a comment keeps an idle stream open."""

    def opening(self, encode_json: JSONEncoder) -> str:
        # Some browsers show nothing of an event stream before its first bytes; proxies may hold the headers.
        return self.encode_comment("")

    def fatal(self, failure: dict[str, object], encode_json: JSONEncoder) -> str:
        return self.encode_next({"errors": [failure]}, encode_json) + self.encode_complete()


class Multipart(MultipartSubscriptionTransport):
    """Multipart subscriptions: a `{"payload": result}` part per result, an empty `{}` part as keep-alive."""

    @property
    def headers(self) -> Mapping[str, str]:
        return {"Content-Type": MULTIPART, **NO_BUFFERING}

    def opening(self, encode_json: JSONEncoder) -> str:
        return f"--{self.separator}" + self.heartbeat_message(encode_json)

    def encode_complete(self) -> str:
        return "--\r\n"  # every part ends with a delimiter: this turns the last one into the closing one

    def fatal(self, failure: dict[str, object], encode_json: JSONEncoder) -> str:
        # A transport error, as the protocol sends one: no payload, and the stream ends.
        part = self.encode_multipart_data({"payload": None, "errors": [failure]}, encode_json)
        return part + self.encode_complete()
