import pytest

from app.schema.responses import (
    GRAPHQL_RESPONSE,
    JSON,
    KEPT_ACCEPT_LENGTH,
    _accepted_kept,
    accepts_json,
    negotiate,
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("application/json", JSON),
        ("*/*", JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, application/json", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}; q=0", JSON),
        (f"{GRAPHQL_RESPONSE};q=nonsense", JSON),
    ],
)
def test_the_graphql_response_media_type_is_used_when_the_client_accepts_it(
    accept: str | None, expected: str
) -> None:
    assert negotiate(accept) == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, True),
        ("", True),
        ("application/json", True),
        (f"{GRAPHQL_RESPONSE}, text/event-stream", True),
        ("text/event-stream, */*;q=0.1", True),
        ("multipart/mixed;subscriptionSpec=1.0,application/json", True),
        ("text/event-stream", False),
        ("text/event-stream, application/json;q=0", False),
    ],
)
def test_a_client_reads_json_when_it_names_a_json_type_or_a_wildcard(
    accept: str | None, expected: bool
) -> None:
    assert accepts_json(accept) is expected


def test_a_client_sending_a_new_accept_every_time_keeps_a_bounded_number_of_them() -> None:
    """Usual Accept values are parsed once and kept, at most 256 of them; a long one is parsed, never kept."""
    _accepted_kept.cache_clear()
    for n in range(1_000):
        assert accepts_json(f"application/json, text/x-{n}") is True
    assert _accepted_kept.cache_info().currsize == 256
    before = _accepted_kept.cache_info()
    long = "text/event-stream, " + "x" * (KEPT_ACCEPT_LENGTH + 1) + ", application/json;q=0"
    assert accepts_json(long) is False
    assert negotiate(long) == JSON
    after = _accepted_kept.cache_info()
    assert (after.hits, after.misses, after.currsize) == (before.hits, before.misses, 256)
