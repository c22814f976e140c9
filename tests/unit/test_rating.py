"""Feedback: given events, when a command, then events or an error."""

from __future__ import annotations

from functools import reduce
from typing import Any

import pytest

from app.domain.errors import ConflictError, NotFoundError, ValidationError
from app.domain.rating import feedback, rules
from app.domain.rating.commands import CreateFeedback, DeleteFeedback
from app.events.base import Event
from app.events.rating import FeedbackCreated, FeedbackDeleted
from app.events.registry import REGISTRY
from app.ids import new_id
from tests.validation import fields_of

FEEDBACK, BOOK, CUSTOMER = new_id(), new_id(), new_id()
NO_BOOK = "The book does not exist."


def given(*events: Event) -> feedback.State:
    return reduce(feedback.evolve, events, feedback.State())


def create(**changes: Any) -> CreateFeedback:
    fields: dict[str, Any] = {
        "feedback_id": FEEDBACK,
        "book_id": BOOK,
        "customer_id": CUSTOMER,
        "first_name": "Ann",
        "last_name": "Leckie",
        "comment": "Loved it.",
        "rating": 4,
    }
    return CreateFeedback(**(fields | changes))


def created(**changes: Any) -> FeedbackCreated:
    fields: dict[str, Any] = {
        "feedback_id": FEEDBACK,
        "book_id": BOOK,
        "customer_id": CUSTOMER,
        "first_name": "Ann",
        "last_name": "Leckie",
        "comment": "Loved it.",
        "rating": 4,
    }
    return FeedbackCreated(**(fields | changes))


def deleted(reason: str | None = None) -> FeedbackDeleted:
    return FeedbackDeleted(feedback_id=FEEDBACK, book_id=BOOK, rating=4, reason=reason)


# ---- create


def test_create_records_the_feedback() -> None:
    assert feedback.decide(given(), create()) == [created()]


def test_create_trims_names_and_comment_and_drops_a_blank_comment() -> None:
    events = feedback.decide(given(), create(first_name="  Ann ", last_name=" Leckie  ", comment="  "))
    assert events == [created(comment=None)]


@pytest.mark.parametrize(
    ("first", "last"),
    [("Al\u200bice", "Smith"), ("\uff21lice", "\uff33mith"), ("\u2060 Alice\ufeff ", "Smi\u200dth")],
)
def test_create_shows_look_alike_names_normalised(first: str, last: str) -> None:
    events = feedback.decide(given(), create(first_name=first, last_name=last))
    assert events == [created(first_name="Alice", last_name="Smith")]


def test_a_name_of_only_invisible_characters_is_missing() -> None:
    with pytest.raises(ValidationError) as raised:
        feedback.decide(given(), create(first_name="\u200b\u2060\ufeff"))
    assert fields_of(raised.value) == {"firstName": "Is required."}


def test_create_without_a_comment() -> None:
    assert feedback.decide(given(), create(comment=None)) == [created(comment=None)]


def test_create_lowercases_the_book_id() -> None:
    assert feedback.decide(given(), create(book_id=BOOK.upper())) == [created()]


@pytest.mark.parametrize("rating", [0, 1, 5])
def test_ratings_from_0_to_5_are_accepted(rating: int) -> None:
    assert feedback.decide(given(), create(rating=rating)) == [created(rating=rating)]


@pytest.mark.parametrize("rating", [-1, 6, 100, 2.5, 0.0, True, "3", None])
def test_a_rating_that_is_not_a_whole_number_from_0_to_5_is_refused(rating: Any) -> None:
    with pytest.raises(ValidationError) as failed:
        feedback.decide(given(), create(rating=rating))
    assert list(fields_of(failed.value)) == ["rating"]


@pytest.mark.parametrize("field", ["first_name", "last_name"])
@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_a_missing_or_blank_name_is_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as failed:
        feedback.decide(given(), create(**{field: value}))
    camel = {"first_name": "firstName", "last_name": "lastName"}[field]
    assert fields_of(failed.value) == {camel: "Is required."}


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_names_may_have_50_characters_but_not_51(field: str) -> None:
    assert feedback.decide(given(), create(**{field: "x" * 50}))
    with pytest.raises(ValidationError) as failed:
        feedback.decide(given(), create(**{field: "x" * 51}))
    assert len(failed.value.fields) == 1


def test_names_are_measured_after_trimming() -> None:
    assert feedback.decide(given(), create(first_name=" " + "x" * 50 + " "))


def test_a_comment_may_have_1000_characters_but_not_1001() -> None:
    assert feedback.decide(given(), create(comment="x" * 1000))
    with pytest.raises(ValidationError) as failed:
        feedback.decide(given(), create(comment="x" * 1001))
    assert list(fields_of(failed.value)) == ["comment"]


def test_malformed_ids_are_refused() -> None:
    with pytest.raises(ValidationError) as failed:
        feedback.decide(given(), create(book_id="not-an-id", feedback_id="nope"))
    assert set(fields_of(failed.value)) == {"bookId", "id"}


def test_every_bad_field_is_reported_at_once() -> None:
    command = create(book_id="x", first_name=" ", last_name="y" * 51, comment="z" * 1001, rating=9)
    with pytest.raises(ValidationError) as failed:
        feedback.decide(given(), command)
    assert set(fields_of(failed.value)) == {"bookId", "firstName", "lastName", "comment", "rating"}


def test_creating_existing_feedback_again_is_a_conflict() -> None:
    with pytest.raises(ConflictError):
        feedback.decide(given(created()), create())
    with pytest.raises(ConflictError):
        feedback.decide(given(created(), deleted()), create())


# ---- delete


def test_delete_removes_the_feedback_with_its_book_and_rating() -> None:
    assert feedback.decide(given(created()), DeleteFeedback(feedback_id=FEEDBACK)) == [deleted()]


def test_compensation_records_its_reason() -> None:
    command = DeleteFeedback(feedback_id=FEEDBACK, reason=NO_BOOK)
    assert feedback.decide(given(created()), command) == [deleted(NO_BOOK)]


def test_deleting_unknown_feedback_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        feedback.decide(given(), DeleteFeedback(feedback_id=FEEDBACK))
    with pytest.raises(NotFoundError):
        feedback.decide(given(), DeleteFeedback(feedback_id=FEEDBACK, reason=NO_BOOK))


def test_an_admin_deleting_deleted_feedback_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        feedback.decide(given(created(), deleted()), DeleteFeedback(feedback_id=FEEDBACK))


@pytest.mark.parametrize("first", [None, NO_BOOK])
def test_a_repeated_compensation_changes_nothing(first: str | None) -> None:
    command = DeleteFeedback(feedback_id=FEEDBACK, reason=NO_BOOK)
    assert feedback.decide(given(created(), deleted(first)), command) == []


# ---- state and the reviewer key


def test_evolve_counts_versions_and_marks_deletion() -> None:
    state = given(created(), deleted())
    assert (state.id, state.book_id, state.rating) == (FEEDBACK, BOOK, 4)
    assert (state.deleted, state.version) == (True, 2)
    assert not state.exists


def test_the_reviewer_key_is_the_customer_and_the_book_not_the_names() -> None:
    key = feedback.reviewer_key(given(created()))
    assert key == rules.reviewer_key(BOOK, CUSTOMER)
    assert key == feedback.reviewer_key(given(created(first_name="Someone", last_name="Else")))
    assert key != feedback.reviewer_key(given(created(customer_id=new_id())))
    assert key != feedback.reviewer_key(given(created(book_id=new_id())))


def test_feedback_from_before_authors_keeps_its_name_key() -> None:
    old = {k: v for k, v in created().__dict__.items() if k != "customer_id"}
    event = REGISTRY.decode("FeedbackCreated", 1, old)
    assert event == created(customer_id=None)
    legacy = rules.legacy_reviewer_key(BOOK, "ann", " LECKIE ")
    assert feedback.reviewer_key(given(event)) == legacy != rules.reviewer_key(BOOK, CUSTOMER)
