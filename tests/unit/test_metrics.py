"""Operation labels a client cannot stretch, the shared directory of `serve`, and the exposition."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from app.metrics.endpoint import exposition, metrics_routes
from app.metrics.instruments import refused
from app.metrics.names import ANONYMOUS, OTHER, OperationNames
from app.metrics.shared import DIRECTORY_VARIABLE, shared_directory
from app.settings import Settings


def test_operations_are_labelled_by_name_until_the_limit() -> None:
    names = OperationNames(limit=2)
    assert names.label("GetBook", ran=True) == "GetBook"
    assert names.label("ListBooks", ran=True) == "ListBooks"
    assert names.label("Third", ran=True) == OTHER
    assert names.label("GetBook", ran=True) == "GetBook"  # a known name keeps its label


def test_anonymous_operations_have_a_label_of_their_own() -> None:
    names = OperationNames(limit=1)
    assert names.label(None, ran=True) == ANONYMOUS
    assert names.label(None, ran=False) == ANONYMOUS
    assert names.label("Named", ran=True) == "Named"  # anonymous ones took no place in the set


def test_only_operations_that_ran_add_a_name() -> None:
    names = OperationNames(limit=1)
    assert names.label("Invalid", ran=False) == OTHER
    assert names.label("Valid", ran=True) == "Valid"
    assert names.label("Valid", ran=False) == "Valid"  # a known name labels its failures too


def test_long_or_strange_names_are_never_labels() -> None:
    names = OperationNames()
    assert names.label("A" * 64, ran=True) == "A" * 64
    for name in ("A" * 65, "with space", "1starts_with_a_digit", 'quote"d', "", "é"):
        assert names.label(name, ran=True) == OTHER


def test_metrics_can_be_turned_off() -> None:
    assert [route.path for route in metrics_routes(Settings())] == ["/metrics"]
    assert metrics_routes(Settings(metrics=False)) == []


def test_serve_shares_a_fresh_directory_and_removes_it() -> None:
    with shared_directory(True) as shared:
        assert shared.directory is not None
        directory = Path(shared.directory)
        assert shared.env == {DIRECTORY_VARIABLE: shared.directory}
        assert list(directory.iterdir()) == []
        (directory / "gauge_livesum_4242.db").write_bytes(b"")
        (directory / "counter_4242.db").write_bytes(b"")
        shared.forget(4242)
        # The exited child's live gauges leave the sums; its counters stay in the totals.
        assert [path.name for path in directory.iterdir()] == ["counter_4242.db"]
    assert not directory.exists()


def test_no_directory_when_metrics_are_off() -> None:
    with shared_directory(False) as shared:
        assert shared.env == {}
        shared.forget(os.getpid())  # nothing to forget


def test_the_exposition_parses_and_holds_what_this_process_recorded() -> None:
    refused("unit_test")
    families = {family.name: family for family in text_string_to_metric_families(exposition([]).decode())}
    samples = {tuple(sample.labels.items()): sample.value for sample in families["bookworm_refusals"].samples}
    assert samples[(("reason", "unit_test"),)] >= 1
