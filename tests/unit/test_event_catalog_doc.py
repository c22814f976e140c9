from app.events.contracts import docs_path, render


def test_docs_events_md_matches_the_registry() -> None:
    assert docs_path().read_text() == render(), "run: python -m app.events.contracts > docs/events.md"
