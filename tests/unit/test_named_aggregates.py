"""Authors, categories and publishers: given events, when a command, then events or an error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any

import pytest

from app.domain.catalog import author, category, named, publisher
from app.domain.catalog import commands as c
from app.domain.errors import ConflictError, NotFoundError, ValidationError
from app.events import catalog as e
from app.events.base import Event
from app.ids import new_id


@dataclass(frozen=True)
class Case:
    module: Any
    create: Callable[[str, str], Any]
    rename: Callable[[str, str], Any]
    delete: Callable[[str], Any]
    created: Callable[[str, str], Event]
    renamed: Callable[[str, str], Event]
    deleted: Callable[[str], Event]


CASES = [
    Case(
        author,
        lambda i, n: c.CreateAuthor(author_id=i, name=n),
        lambda i, n: c.RenameAuthor(author_id=i, name=n),
        lambda i: c.DeleteAuthor(author_id=i),
        lambda i, n: e.AuthorCreated(author_id=i, name=n),
        lambda i, n: e.AuthorRenamed(author_id=i, name=n),
        lambda i: e.AuthorDeleted(author_id=i),
    ),
    Case(
        category,
        lambda i, n: c.CreateCategory(category_id=i, name=n),
        lambda i, n: c.RenameCategory(category_id=i, name=n),
        lambda i: c.DeleteCategory(category_id=i),
        lambda i, n: e.CategoryCreated(category_id=i, name=n),
        lambda i, n: e.CategoryRenamed(category_id=i, name=n),
        lambda i: e.CategoryDeleted(category_id=i),
    ),
    Case(
        publisher,
        lambda i, n: c.CreatePublisher(publisher_id=i, name=n),
        lambda i, n: c.RenamePublisher(publisher_id=i, name=n),
        lambda i: c.DeletePublisher(publisher_id=i),
        lambda i, n: e.PublisherCreated(publisher_id=i, name=n),
        lambda i, n: e.PublisherRenamed(publisher_id=i, name=n),
        lambda i: e.PublisherDeleted(publisher_id=i),
    ),
]
pytestmark = pytest.mark.parametrize("case", CASES, ids=lambda k: k.module.LABEL)


def given(case: Case, *events: Event) -> named.State:
    state: named.State = reduce(case.module.evolve, events, named.State())
    return state


def when(case: Case, state: named.State, command: Any) -> list[Event]:
    result: list[Event] = case.module.decide(state, command)
    return result


ID = new_id()


def test_create_trims_the_name(case: Case) -> None:
    assert when(case, given(case), case.create(ID, "  Ursula  ")) == [case.created(ID, "Ursula")]


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_create_refuses_a_bad_name(case: Case, name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        when(case, given(case), case.create(ID, name))
    assert [f.field for f in caught.value.fields] == ["name"]


def test_create_accepts_a_name_of_100_characters(case: Case) -> None:
    assert when(case, given(case), case.create(ID, "x" * 100)) == [case.created(ID, "x" * 100)]


def test_create_reports_every_bad_field(case: Case) -> None:
    with pytest.raises(ValidationError) as caught:
        when(case, given(case), case.create("not-an-id", " "))
    assert {f.field for f in caught.value.fields} == {"id", "name"}


def test_create_twice_conflicts(case: Case) -> None:
    with pytest.raises(ConflictError):
        when(case, given(case, case.created(ID, "A")), case.create(ID, "B"))


def test_rename(case: Case) -> None:
    state = given(case, case.created(ID, "A"))
    assert when(case, state, case.rename(ID, " B ")) == [case.renamed(ID, "B")]


def test_rename_to_the_same_name_changes_nothing(case: Case) -> None:
    assert when(case, given(case, case.created(ID, "A")), case.rename(ID, " A")) == []


def test_rename_refuses_a_bad_name(case: Case) -> None:
    with pytest.raises(ValidationError):
        when(case, given(case, case.created(ID, "A")), case.rename(ID, ""))


def test_delete(case: Case) -> None:
    assert when(case, given(case, case.created(ID, "A")), case.delete(ID)) == [case.deleted(ID)]


@pytest.mark.parametrize("history", ["missing", "deleted"])
def test_acting_on_a_missing_or_deleted_entity_is_not_found(case: Case, history: str) -> None:
    events = [] if history == "missing" else [case.created(ID, "A"), case.deleted(ID)]
    state = given(case, *events)
    for command in (case.rename(ID, "B"), case.delete(ID)):
        with pytest.raises(NotFoundError):
            when(case, state, command)


def test_evolve_tracks_name_version_and_deletion(case: Case) -> None:
    state = given(case, case.created(ID, "A"), case.renamed(ID, "B"))
    assert (state.id, state.name, state.version, state.exists) == (ID, "B", 2, True)
    assert not given(case, case.created(ID, "A"), case.deleted(ID)).exists
