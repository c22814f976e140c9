import pytest

from app.schema.responses import GRAPHQL_RESPONSE, JSON, accepts_json, negotiate


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
