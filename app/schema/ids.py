"""Identifiers at the API boundary: each malformed id, alone or in a list, is a FieldError naming it."""

from __future__ import annotations

from collections.abc import Iterable

from app.domain.fields import Errors, entity_id


def id_errors(field: str, value: str) -> Errors:
    errors: Errors = []
    entity_id(value, errors, field)
    return errors


def list_errors(field: str, values: Iterable[str]) -> Errors:
    return [error for i, value in enumerate(values) for error in id_errors(f"{field}[{i}]", value)]
