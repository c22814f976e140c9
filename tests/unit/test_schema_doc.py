"""docs/schema.graphql is the schema the code builds, as `bookworm schema` prints it."""

import pytest

from app.cli import main, schema_sdl
from tests.conftest import ROOT

SCHEMA_DOC = ROOT / "docs" / "schema.graphql"


def test_docs_schema_graphql_matches_the_code() -> None:
    assert SCHEMA_DOC.read_text() == schema_sdl(), "run: bookworm schema > docs/schema.graphql"


def test_bookworm_schema_prints_the_sdl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0

    assert capsys.readouterr().out == schema_sdl()
