import pytest

from app.schema.responses import GRAPHQL_RESPONSE, JSON, negotiate


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
