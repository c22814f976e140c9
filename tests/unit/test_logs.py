"""Bounded logging: cut values, a few lines per kind per window, and one line counting the rest."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest

from app.logs import (
    BoundedFormatter,
    DebugOnlyFilter,
    JsonFormatter,
    Throttle,
    ThrottledLogger,
    ThrottleFilter,
    configure,
    shorten,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def throttled(clock: Clock, name: str = "test.throttled") -> ThrottledLogger:
    return ThrottledLogger(logging.getLogger(name), burst=3, window=10.0, max_value_chars=8, clock=clock)


def test_shorten_cuts_long_values_only() -> None:
    assert shorten("short", 8) == "short"
    assert shorten("x" * 20, 8) == "xxxxxxx…"
    assert len(shorten("x" * 20, 8)) == 8
    assert shorten(12345, 3) == "12…"


def test_throttle_admits_a_burst_per_window_and_counts_the_rest(clock: Clock) -> None:
    throttle = Throttle(burst=2, window=5.0, clock=clock)

    admitted = [throttle.admit("a")[0] for _ in range(5)]
    other = throttle.admit("b")
    clock.now += 5.0
    after_window = throttle.admit("a")

    assert admitted == [True, True, False, False, False]
    assert other == (True, 0)  # each kind has its own budget
    assert after_window == (True, 3)  # the new window reports what the last one dropped


def test_burst_then_one_summary_line(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    log = throttled(clock)
    with caplog.at_level(logging.WARNING, "test.throttled"):
        for number in range(20_000):
            log.warning("refused", "refused %s", number)
        clock.now += 10.0
        log.warning("refused", "refused %s", "again")

    assert lines(caplog) == [
        "refused 0",
        "refused 1",
        "refused 2",
        "… 19997 more refused lines not logged in 10 s",
        "refused again",
    ]


def test_kinds_are_throttled_separately(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    log = throttled(clock)
    with caplog.at_level(logging.WARNING, "test.throttled"):
        for _ in range(5):
            log.warning("a", "line a")
            log.warning("b", "line b")

    assert lines(caplog).count("line a") == 3 and lines(caplog).count("line b") == 3


def test_values_are_cut(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "test.throttled"):
        throttled(clock).warning("long", "client %s said %s", "1.2.3.4", "y" * 10_000)

    assert lines(caplog) == ["client 1.2.3.4 said yyyyyyy…"]


def test_flush_reports_drops_without_waiting_for_a_next_line(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    log = throttled(clock)
    with caplog.at_level(logging.WARNING, "test.throttled"):
        for _ in range(5):
            log.warning("quiet", "line")
        log.flush()
        log.flush()  # nothing new to report

    assert lines(caplog) == ["line"] * 3 + ["… 2 more quiet lines not logged in 10 s"]


def test_disabled_level_costs_nothing(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    log = throttled(clock)
    with caplog.at_level(logging.ERROR, "test.throttled"):
        for _ in range(5):
            log.info("kind", "line")

    assert lines(caplog) == [] and log.throttle.keys() == []


async def test_an_event_loop_timer_reports_the_drops_when_the_window_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = ThrottledLogger(logging.getLogger("test.timer"), burst=1, window=0.05)
    with caplog.at_level(logging.WARNING, "test.timer"):
        for _ in range(4):
            log.warning("burst", "line")
        await asyncio.sleep(0.2)

    assert lines(caplog) == ["line", "… 3 more burst lines not logged in 0.05 s"]


def test_filter_drops_repeated_formats_and_notes_the_count(clock: Clock) -> None:
    log_filter = ThrottleFilter(burst=2, window=10.0, prefixes=("%s - ", "connection open"))
    log_filter.throttle.clock = clock

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, ("1.2.3.4",), None)

    passed = [log_filter.filter(record("%s - refused")) for _ in range(6)]
    other = log_filter.filter(record("started on %s"))  # another prefix: never throttled
    clock.now += 10.0
    later = record("%s - refused")

    assert passed == [True, True, False, False, False, False] and other
    assert log_filter.filter(later)
    assert later.getMessage() == "1.2.3.4 - refused (and 4 more like it not logged)"


def test_a_long_line_is_cut_in_the_middle_so_its_head_and_tail_stay() -> None:
    formatter = BoundedFormatter("%(levelname)s %(message)s", limit=100)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "value=%s end", ("A" * 10_000,), None)
    line = formatter.format(record)
    assert len(line) < 160
    assert line.startswith("ERROR value=AAA") and line.endswith("A end")
    assert "characters cut" in line


def test_a_traceback_counts_towards_the_bound() -> None:
    formatter = BoundedFormatter("%(message)s", limit=200)
    try:
        raise ValueError("x" * 5_000)
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = formatter.format(record)
    assert len(line) < 260 and line.startswith("failed") and line.endswith("x")


def test_short_lines_are_left_alone() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    assert BoundedFormatter("%(message)s", limit=100).format(record) == "hello you"


def test_a_debug_only_line_shows_only_when_debug_is_on(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.debug_only")
    quiet = DebugOnlyFilter(prefixes=("Started server process",))
    logger.addFilter(quiet)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("Started server process [%d]", 42)
            logger.info("Something else")
            logger.warning("Started server process, oddly at WARNING")
        assert lines(caplog) == ["Something else", "Started server process, oddly at WARNING"]
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger=logger.name):
            logger.info("Started server process [%d]", 42)
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("DEBUG", "Started server process [42]")
        ]
    finally:
        logger.removeFilter(quiet)


def record(message: str, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("bookworm.test", logging.ERROR, __file__, 1, message, (), exc_info)  # type: ignore[arg-type]


def test_json_lines_are_one_object_each_with_the_traceback_inside() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failure = sys.exc_info()
    line = JsonFormatter(limit=4_000).format(record("it failed\nover two lines", failure))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "bookworm.test"
    assert entry["message"] == "it failed\nover two lines"
    assert "ValueError: boom" in entry["error"]
    assert entry["time"].endswith("+00:00")
    assert "trace_id" not in entry  # logged outside any span


def test_json_messages_are_cut_in_the_middle() -> None:
    entry = json.loads(JsonFormatter(limit=100).format(record("a" * 50 + "b" * 1_000 + "c" * 50)))
    assert entry["message"].startswith("a" * 50) and entry["message"].endswith("c" * 50)
    assert "characters cut" in entry["message"]


def test_json_lines_inside_a_span_carry_its_trace_and_span_ids() -> None:
    trace = pytest.importorskip("opentelemetry.trace")
    context = trace.SpanContext(trace_id=0x1234, span_id=0xABCD, is_remote=False)
    with trace.use_span(trace.NonRecordingSpan(context)):
        entry = json.loads(JsonFormatter(limit=4_000).format(record("inside")))
    assert entry["trace_id"] == f"{0x1234:032x}" and entry["span_id"] == f"{0xABCD:016x}"


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="BOOKWORM_LOG_FORMAT"):
        configure("INFO", limit=100, log_format="xml")
