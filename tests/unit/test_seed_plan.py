"""The seed's plan: a large catalog still has unique titles and is planned in bounded time."""

from __future__ import annotations

from app import seed


def test_a_catalog_larger_than_the_word_lists_gets_unique_numbered_titles() -> None:
    books = [item.command for item in seed._book_items(2000)]
    names = [book.name for book in books]
    assert len(set(names)) == 2000
    assert any(", Volume " in name for name in names)


def test_a_larger_seed_extends_a_smaller_one() -> None:
    assert [i.command for i in seed._book_items(300)] == [i.command for i in seed._book_items(1000)][:300]
