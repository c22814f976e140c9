"""Bounded logging: values cut to a length, and lines per kind limited to a few per time window."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ELLIPSIS = "…"
MAX_KEYS = 1_024  # kinds of line a throttle tracks; past it, kinds whose window is over are forgotten


def shorten(value: object, limit: int) -> str:
    """Return str(value) cut to at most `limit` characters (an ellipsis marks a cut)."""
    text = str(value)
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


@dataclass
class _Window:
    started: float
    admitted: int = 0
    dropped: int = 0


class Throttle:
    """Admit at most `burst` events per key in each `window` seconds; count the ones dropped."""

    def __init__(self, *, burst: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.window = window
        self.clock = clock
        self._windows: dict[str, _Window] = {}

    def admit(self, key: str) -> tuple[bool, int]:
        """Record one event of `key`: (admitted?, events dropped in the key's window that just ended)."""
        now = self.clock()
        window = self._windows.get(key)
        ended_with_drops = 0
        if window is None or now - window.started >= self.window:
            ended_with_drops = window.dropped if window is not None else 0
            self._forget_old(now)
            window = self._windows[key] = _Window(started=now)
        if window.admitted < self.burst:
            window.admitted += 1
            return True, ended_with_drops
        window.dropped += 1
        return False, ended_with_drops

    def take_dropped(self, key: str) -> int:
        """Return how many events of `key` were dropped and not yet reported, and reset that count."""
        window = self._windows.get(key)
        if window is None:
            return 0
        dropped, window.dropped = window.dropped, 0
        return dropped

    def remaining(self, key: str) -> float:
        """Seconds until the window of `key` ends (0 when it has none)."""
        window = self._windows.get(key)
        return 0.0 if window is None else max(0.0, window.started + self.window - self.clock())

    def keys(self) -> list[str]:
        return list(self._windows)

    def _forget_old(self, now: float) -> None:
        if len(self._windows) < MAX_KEYS:
            return
        for key, window in list(self._windows.items()):
            if now - window.started >= self.window and window.dropped == 0:
                del self._windows[key]


class ThrottledLogger:
    """Log at most `burst` lines of each kind per `window` seconds, then one line counting the rest.

    `kind` names a family of lines (e.g. "ws-refused:per-ip"): keep it to a small fixed set, never a
    client-supplied value. Arguments are cut to `max_value_chars`. The count of dropped lines is logged
    when the kind's window ends (by a timer when an event loop runs), or at the latest with its next line.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 5,
        window: float = 10.0,
        max_value_chars: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.max_value_chars = max_value_chars
        self.throttle = Throttle(burst=burst, window=window, clock=clock)
        self._flush_scheduled: set[str] = set()

    def warning(self, kind: str, msg: str, *args: object) -> None:
        """Log a warning line of `kind`, unless that kind already used its lines in this window."""
        self.log(logging.WARNING, kind, msg, *args)

    def info(self, kind: str, msg: str, *args: object) -> None:
        """Log an info line of `kind`, unless that kind already used its lines in this window."""
        self.log(logging.INFO, kind, msg, *args)

    def log(self, level: int, kind: str, msg: str, *args: object) -> None:
        """Log one line of `kind` at `level` within the kind's budget."""
        if not self.logger.isEnabledFor(level):
            return
        admitted, dropped_before = self.throttle.admit(kind)
        if dropped_before:
            self._summarise(level, kind, dropped_before)
        if admitted:
            self.logger.log(level, msg, *(shorten(arg, self.max_value_chars) for arg in args))
        else:
            self._schedule_flush(level, kind)

    def flush(self, level: int = logging.WARNING) -> None:
        """Log the count of every kind's dropped lines not reported yet."""
        for kind in self.throttle.keys():
            self._flush_kind(level, kind)

    def _flush_kind(self, level: int, kind: str) -> None:
        self._flush_scheduled.discard(kind)
        dropped = self.throttle.take_dropped(kind)
        if dropped:
            self._summarise(level, kind, dropped)

    def _summarise(self, level: int, kind: str, dropped: int) -> None:
        seconds = self.throttle.window
        self.logger.log(level, "… %d more %s lines not logged in %g s", dropped, kind, seconds)

    def _schedule_flush(self, level: int, kind: str) -> None:
        if kind in self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the count is logged with the kind's next line, or by flush()
        self._flush_scheduled.add(kind)
        loop.call_later(self.throttle.remaining(kind), self._flush_kind, level, kind)


class ThrottleFilter(logging.Filter):
    """Let at most `burst` records per format per `window` seconds through, for formats with `prefixes`.

    For lines a library writes per connection (uvicorn's handshake lines): the first record let through
    after some were dropped says how many.
    """

    def __init__(self, *, burst: int = 5, window: float = 10.0, prefixes: tuple[str, ...] = ("",)) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.throttle = Throttle(burst=burst, window=window)

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str) or not record.msg.startswith(self.prefixes):
            return True
        admitted, dropped = self.throttle.admit(record.msg)
        if admitted and dropped:
            record.msg = f"{record.msg} (and {dropped} more like it not logged)"
        return admitted


class DebugOnlyFilter(logging.Filter):
    """Let INFO records whose format starts with one of `prefixes` through only when DEBUG is on.

    For lines a library writes at INFO that tell a newcomer nothing (uvicorn's per-process start and
    stop lines): they show again with BOOKWORM_LOG_LEVEL=DEBUG, marked as DEBUG.
    """

    def __init__(self, *, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not str(record.msg).startswith(self.prefixes):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class BoundedFormatter(logging.Formatter):
    """Format records, cutting any longer than `limit` characters in the middle.

    Values an attacker sends may reach a log line (an error's message, a path); the middle goes, so the
    head (time, level, logger) and the tail (a traceback's last frame and error) stay readable.
    """

    def __init__(self, fmt: str, *, limit: int) -> None:
        super().__init__(fmt)
        self.limit = limit

    def format(self, record: logging.LogRecord) -> str:
        return cut_middle(super().format(record), self.limit)


def cut_middle(text: str, limit: int) -> str:
    """`text`, or its head and tail with the middle past `limit` characters cut out and counted."""
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    return f"{text[:half]} {ELLIPSIS} {len(text) - 2 * half} characters cut {ELLIPSIS} {text[-half:]}"


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object on one line, for log pipelines (BOOKWORM_LOG_FORMAT=json).

    Fields: `time` (UTC, ISO 8601 with milliseconds), `level`, `logger`, `message`, `process`; `error`
    with the traceback when there is one; `trace_id` and `span_id` (hex, as OpenTelemetry and W3C
    traceparent write them) when the record was logged inside a recording span. The message and the
    traceback are each cut in the middle past `limit` characters, as the text lines are.
    """

    def __init__(self, *, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": cut_middle(record.getMessage(), self.limit),
            "process": record.process,
        }
        if record.exc_info:
            entry["error"] = cut_middle(self.formatException(record.exc_info), self.limit)
        entry.update(trace_ids())
        return json.dumps(entry, ensure_ascii=False, default=str)


def trace_ids() -> dict[str, str]:
    """The current OpenTelemetry span's trace and span ids, when one is recording; else nothing."""
    if _current_span is None:
        return {}
    context = _current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def _span_getter() -> Callable[[], Any] | None:
    """OpenTelemetry's current-span function, when its API is installed; without it no span records."""
    try:
        module = importlib.import_module("opentelemetry.trace")
    except ImportError:
        return None
    getter: Callable[[], Any] = module.get_current_span
    return getter


_current_span = _span_getter()

LOG_FORMATS = ("text", "json")
# Libraries whose INFO lines are for their own debugging: shown at WARNING and above unless DEBUG is on.
QUIET_LIBRARIES = ("alembic",)


def configure(level: str, *, limit: int, log_format: str = "text") -> None:
    """Send every log record to standard error: one bounded line (or traceback) each, or one JSON object."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"BOOKWORM_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter(limit=limit))
    else:
        handler.setFormatter(BoundedFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", limit=limit))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
