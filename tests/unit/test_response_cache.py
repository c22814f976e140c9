"""The response cache's store and policy: what is kept, what a notice drops, the read/notice race, bounds.

The whole path (two API processes, a worker, notices over Redis) is tested in
tests/faults/test_response_cache.py; here the store is driven the way the hub drives it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from graphql import parse

from app.eventstore.position import Position
from app.live.hub import Watch
from app.live.notices import CATALOG_TOPIC, ChangeNotice
from app.queries import reads
from app.queries.response_cache import Reading, ResponseCache
from app.schema import build_schema
from app.schema.cache import CACHEABLE, cacheable
from app.schema.responses import EncodedData

BOOK_1 = "00000000-0000-4000-8000-000000000001"
BOOK_2 = "00000000-0000-4000-8000-000000000002"
AUTHOR_1 = "00000000-0000-4000-8000-0000000000a1"


class Hub:
    """Stands in for the hub: holds the watch the cache asks for, so a test can play its notices."""

    watch_of: Watch

    def watch(self, topic: str, heard: Callable[[ChangeNotice | None], None]) -> Watch:
        self.watch_of = Watch(topic, heard)
        return self.watch_of


def live_cache(**bounds: float) -> tuple[ResponseCache, Watch]:
    settings: dict[str, float] = {"entries": 100, "max_bytes": 1_000_000, "seconds": 60.0} | bounds
    cache = ResponseCache(
        entries=int(settings["entries"]), max_bytes=int(settings["max_bytes"]), seconds=settings["seconds"]
    )
    hub = Hub()
    cache.follow(hub)  # type: ignore[arg-type]
    watch = hub.watch_of
    watch.topic_confirmed = watch.everyone_confirmed = True
    return cache, watch


def notice(entity: str, entity_id: str, position: int = 10) -> ChangeNotice:
    return ChangeNotice(
        position=Position(position, position),
        topic=CATALOG_TOPIC,
        kind="UPDATED",
        entity=entity,
        entity_id=entity_id,
    )


def read(cache: ResponseCache, *tags: str, position: int = 5) -> Reading:
    reading = cache.begin(Position(position, position))
    assert reading is not None
    reading.tags.update(tags)
    reading.cacheable = True
    return reading


def test_an_answer_is_kept_and_found_by_its_key_only() -> None:
    cache, _ = live_cache()
    assert cache.keep("k1", read(cache, f"Book:{BOOK_1}"), b'{"book":1}')
    found = cache.find("k1", None)
    assert found is not None and found.data == b'{"book":1}'
    assert cache.find("k2", None) is None


def test_a_notice_drops_the_answers_that_read_its_row_or_its_listing() -> None:
    cache, watch = live_cache()
    cache.keep("one", read(cache, f"Book:{BOOK_1}"), b"1")
    cache.keep("two", read(cache, f"Book:{BOOK_2}"), b"2")
    cache.keep("list", read(cache, *reads.BOOK_LISTING), b"[]")
    cache.keep("authors", read(cache, "Author"), b"[]")
    watch.heard(notice("Book", BOOK_1))
    assert cache.find("one", None) is None
    assert cache.find("list", None) is None
    assert cache.find("two", None) is not None
    assert cache.find("authors", None) is not None
    watch.heard(notice("Author", AUTHOR_1))
    assert cache.find("authors", None) is None


def test_an_answer_whose_read_began_before_a_notice_of_its_rows_is_not_kept() -> None:
    cache, watch = live_cache()
    stale = read(cache, f"Book:{BOOK_1}")
    other = read(cache, f"Book:{BOOK_2}")
    watch.heard(notice("Book", BOOK_1))  # arrives while both reads run
    assert not cache.keep("stale", stale, b"old")
    assert cache.keep("other", other, b"fine")
    assert cache.keep("again", read(cache, f"Book:{BOOK_1}"), b"new")


def test_lost_notices_drop_everything_and_any_read_begun_before() -> None:
    cache, watch = live_cache()
    cache.keep("one", read(cache, f"Book:{BOOK_1}"), b"1")
    running = read(cache, f"Book:{BOOK_2}")
    watch.heard(None)
    assert len(cache) == 0
    assert not cache.keep("two", running, b"2")


def test_nothing_is_kept_or_served_until_both_channels_are_confirmed() -> None:
    cache, watch = live_cache()
    cache.keep("one", read(cache, f"Book:{BOOK_1}"), b"1")
    watch.everyone_confirmed = False
    assert cache.begin(Position(1, 1)) is None
    assert cache.find("one", None) is None


def test_a_request_for_a_newer_position_is_not_answered_by_an_older_read() -> None:
    cache, _ = live_cache()
    cache.keep("one", read(cache, f"Book:{BOOK_1}", position=5), b"1")
    assert cache.find("one", Position(5, 5)) is not None
    assert cache.find("one", Position(6, 6)) is None


def test_only_cacheable_reads_that_read_tagged_rows_are_kept() -> None:
    cache, _ = live_cache()
    not_cacheable = read(cache, f"Book:{BOOK_1}")
    not_cacheable.cacheable = False
    assert not cache.keep("a", not_cacheable, b"1")
    assert not cache.keep("b", read(cache), b"1")  # read nothing it could be told about


def test_the_least_recently_used_go_first_past_the_entries_and_bytes() -> None:
    cache, _ = live_cache(entries=2, max_bytes=6400)
    cache.keep("a", read(cache, "Book"), b"1")
    cache.keep("b", read(cache, "Book"), b"2")
    cache.find("a", None)
    cache.keep("c", read(cache, "Book"), b"3")
    assert cache.find("b", None) is None
    assert cache.find("a", None) is not None
    assert not cache.keep("huge", read(cache, "Book"), b"x" * 101)  # over 1/64 of the bytes


def test_an_answer_expires() -> None:
    cache, _ = live_cache(seconds=-1.0)
    cache.keep("a", read(cache, "Book"), b"1")
    assert cache.find("a", None) is None


def test_reads_are_recorded_only_where_a_request_asked() -> None:
    reads.read_rows(reads.BOOK, [BOOK_1])  # no request records here: nothing happens
    tags: set[str] = set()
    reads.record(tags)
    reads.read_rows(reads.BOOK, [BOOK_1])
    reads.read_listing(reads.AUTHOR)
    assert tags == {f"Book:{BOOK_1}", "Author"}


@pytest.fixture(scope="module")
def schema() -> object:
    return build_schema()._schema


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("query($id: ID!) { book(id: $id) { id name authors { name } category { bookCount } } }", True),
        ("{ books(first: 5) { edges { cursor node { __typename id } } pageInfo { hasNextPage } } }", True),
        ("{ authors { edges { node { books { totalCount } } } } categories { id } publishers { id } }", True),
        ("{ ...F } fragment F on Query { book(id: 1) { name } }", True),
        ("{ myBasket { totalPrice } }", False),
        ("{ book(id: 1) { name } feedbacks(bookId: 1) { totalCount } }", False),
        ("{ streamHistory(streamId: 1) { type } }", False),
        ("{ __schema { types { name } } }", False),
        ('mutation { createAuthor(input: {name: "x"}) { __typename } }', False),
    ],
)
def test_only_documents_of_catalog_fields_are_cacheable(
    schema: object, document: str, expected: bool
) -> None:
    assert cacheable(schema, parse(document)) is expected  # type: ignore[arg-type]


def test_every_cacheable_field_exists(schema: object) -> None:
    for type_name, field_name in CACHEABLE:
        fields = schema.type_map[type_name].fields  # type: ignore[attr-defined]
        assert field_name in fields, (type_name, field_name)


@pytest.mark.parametrize("extensions", [None, {"cost": {"requestedQueryCost": 3, "remaining": 997.5}}])
def test_an_answer_kept_on_a_miss_is_written_around_its_one_encoding(extensions: object) -> None:
    data = {"book": {"id": BOOK_1, "name": 'Kōbō Abe \u2028 "quoted"', "price": "9.99", "tags": [1, None]}}
    response = {"data": data} | ({"extensions": extensions} if extensions else {})
    encoded = EncodedData(response, json.dumps(data, separators=(",", ":")))
    assert encoded.encode() == json.dumps(response, separators=(",", ":"))
