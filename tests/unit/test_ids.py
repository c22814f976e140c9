"""Ids: the canonical-form check and the UUIDv7 strings, against what the uuid module says of them."""

from __future__ import annotations

import uuid

import pytest

from app.ids import is_id, new_id


def _by_uuid(value: object) -> bool:
    """The check is_id stands for: the value is the canonical string of the UUID it parses as."""
    try:
        return str(uuid.UUID(value)) == value.lower()  # type: ignore[arg-type, attr-defined]
    except (ValueError, AttributeError, TypeError):
        return False


CANONICAL = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize(
    "value",
    [
        CANONICAL,
        CANONICAL.upper(),
        "0190A1b2-c3D4-7e5f-8a9b-0c1d2e3f4a5B",
        CANONICAL.replace("-", ""),  # UUID() parses it, but it is not the canonical form
        "{" + CANONICAL + "}",
        "urn:uuid:" + CANONICAL,
        CANONICAL + "\n",
        " " + CANONICAL,
        CANONICAL[:-1],
        CANONICAL + "0",
        CANONICAL.replace("-", "_"),
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g",
        # Arabic-Indic digits: int() reads them, but the form is not canonical.
        "\u0660\u0661\u0669\u0660a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5\u212a",  # KELVIN SIGN lowers to "k", not a hex digit
        "",
        None,
        12,
        b"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    ],
)
def test_is_id_accepts_exactly_the_canonical_form_in_any_case(value: object) -> None:
    assert is_id(value) is _by_uuid(value)  # type: ignore[arg-type]


def test_new_ids_are_canonical_uuid7_strings_in_time_order() -> None:
    ids = [new_id() for _ in range(2_000)]
    for value in ids:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
    assert len(set(ids)) == len(ids)
    millis = [uuid.UUID(v).int >> 80 for v in ids]
    assert millis == sorted(millis)
