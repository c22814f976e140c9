"""Responses as JSON text, and a cap on the size of every response, over HTTP and websockets alike."""

from __future__ import annotations

from app.json_text import dumps

RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"


def encode(value: object) -> str:
    """`value` (a response, a websocket payload) as compact JSON (app/json_text.py)."""
    return dumps(value)


def too_large_error(limit: int) -> dict[str, object]:
    """The GraphQL error that replaces a result larger than `limit` bytes."""
    message = (
        f"The result is larger than {limit} bytes (setting BOOKWORM_MAX_RESPONSE_BYTES). "
        "Ask for fewer items with `first`, or fewer fields."
    )
    return {"message": message, "extensions": {"code": RESPONSE_TOO_LARGE, "maximum": limit}}


def cap_response(encoded: str | bytes, data: object, limit: int) -> str:
    """Return `encoded`; past `limit` bytes, the same message with its result replaced by an error.

    `data` is what was encoded: an HTTP response body ({"data", "errors", "extensions"}) or a websocket
    message whose `payload` is such a result.
    """
    text = encoded.decode() if isinstance(encoded, bytes) else encoded
    if len(text) <= limit or len(text.encode()) <= limit or not isinstance(data, dict):
        return text
    error = too_large_error(limit)
    if "payload" in data:  # a websocket message: keep its id and type, replace the result
        replaced: dict[str, object] = {**data, "payload": {"data": None, "errors": [error]}}
    else:
        replaced = {"data": None, "errors": [error]}
    return encode(replaced)
