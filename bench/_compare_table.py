"""compare.py's figures: one round of load on one side, the rounds of one operation, and the report."""

from __future__ import annotations

import argparse
import os
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from _cpu import CpuShare, CpuTimes
from _lean import Outcome
from _server import percentile

_UNSHOWN = {"BOOKWORM_DATABASE_URL", "BOOKWORM_REDIS_URL", "BOOKWORM_REDIS_PREFIX", "BOOKWORM_DATA_DIR"}


@dataclass(frozen=True)
class Round:
    """One measured window on one side: rate, latency, and CPU per good answer."""

    ok: int
    errors: Counter[str]
    elapsed: float
    ended: float  # perf_counter when the last answer was read
    p50_ms: float | None
    p99_ms: float | None
    server_us: float | None  # the server's processes
    database_us: float | None  # the PostgreSQL backends of its database
    client_us: float  # the load generator
    machine: float | None  # percent of one core, every core summed

    @classmethod
    def of(cls, outcome: Outcome, before: CpuTimes, after: CpuTimes) -> Round:
        """Summarise `outcome`, measured between the CPU readings `before` and `after`."""
        elapsed = after.at - before.at
        share = CpuShare.between(before, after)
        ok = len(outcome.latencies)

        def per_request(percent: float | None) -> float | None:
            return None if percent is None or not ok else percent / 100 * elapsed / ok * 1e6

        return cls(
            ok=ok,
            errors=outcome.errors,
            elapsed=elapsed,
            ended=after.at,
            p50_ms=statistics.median(outcome.latencies) * 1000 if ok else None,
            p99_ms=percentile(outcome.latencies, 0.99) * 1000 if ok else None,
            server_us=per_request(share.server),
            database_us=per_request(share.database),
            client_us=per_request(share.client) or 0.0,
            machine=share.machine,
        )

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed


@dataclass
class Writes:
    """Bookworm's read models behind its writes: during each round and after it (seconds)."""

    lagged: list[float] = field(default_factory=list)  # each write of the rounds: commit -> every read model
    lags: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)  # appends/s until every read model had them

    def after_round(self, done: Round, lag: float) -> None:
        self.lags.append(lag)
        self.end_to_end.append(done.ok / (done.elapsed + lag))


@dataclass
class Comparison:
    """The rounds of one operation on both sides."""

    label: str
    writes: Writes | None = None
    bookworm: list[Round] = field(default_factory=list)
    floor: list[Round] = field(default_factory=list)

    def announce(self, number: int) -> None:
        """Print the latest pair of rounds."""
        pair = ", ".join(
            f"{name} {r.rate:.0f}/s p99 {_cell(r.p99_ms, 1)} ms, {r.errors.total()} failed"
            for name, r in (("Bookworm", self.bookworm[-1]), ("floor", self.floor[-1]))
        )
        print(f"{self.label} round {number}: {pair}", flush=True)

    def ratios(self) -> list[float]:
        return [b.rate / f.rate for b, f in zip(self.bookworm, self.floor, strict=True) if f.rate]


def print_report(
    found: Sequence[Comparison], args: argparse.Namespace, load_before: tuple[float, ...]
) -> None:
    """Print the settings, the comparison table, Bookworm's lag after writes, and the failures."""
    rounds = [r for c in found for r in (*c.bookworm, *c.floor)]
    busy = [r.machine for r in rounds if r.machine is not None]
    tuned = [
        f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BOOKWORM_") and k not in _UNSHOWN
    ]
    n = args.processes
    print(
        f"\nBookworm: {n} API process{'es' * (n > 1)} and its worker; "
        f"floor: {n} uvicorn worker{'s' * (n > 1)}. {args.concurrency} connections each, "
        f"{args.rounds} rounds of {args.duration:g} s after a 1 s warm-up, Bookworm then floor."
    )
    print(f"Bookworm settings: {' '.join(tuned)}")
    load = "/".join(f"{v:.1f}" for v in load_before)
    if busy:
        print(
            f"Load average before: {load}; machine busy during the rounds: {min(busy):.0f}-{max(busy):.0f} %."
        )
    print()
    _comparison_table(found)
    writes = [c for c in found if c.writes is not None]
    if writes:
        print()
        _writes_table(writes)
    print()
    print("* The floor has no list: its by-id query is the floor of both reads.")
    print(
        "Medians over the rounds; ratio = Bookworm req/s / floor req/s, the rounds' own ratios in brackets."
    )
    print("Bookworm's server CPU counts its worker too (relay, consumers, projections); the floor has none.")
    for comparison in found:
        for name, side in (("Bookworm", comparison.bookworm), ("floor", comparison.floor)):
            errors = sum((r.errors for r in side), Counter[str]())
            if errors:
                kinds = ", ".join(f"{kind} x{n}" for kind, n in errors.most_common())
                print(f"failed, {comparison.label}, {name}: {kinds}")


def _comparison_table(found: Sequence[Comparison]) -> None:
    print(
        "| operation: Bookworm / floor | Bookworm req/s | p50 / p99 ms | CPU µs/req server + db "
        "| floor req/s | p50 / p99 ms | CPU µs/req server + db | ratio | p99 ratio | failed "
        "| generator µs/req |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in found:
        b, f = _Medians(c.bookworm), _Medians(c.floor)
        ratios = c.ratios()
        ratio = f"{b.rate / f.rate:.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if f.rate and ratios else "-"
        p99_ratio = f"{b.p99 / f.p99:.2f}" if b.p99 and f.p99 else "-"
        print(
            f"| {c.label} | {b.rate:,.0f} | {b.latency} | {b.cpu} | {f.rate:,.0f} | {f.latency} | {f.cpu} "
            f"| {ratio} | {p99_ratio} | {b.failed} / {f.failed} | {b.client:.0f} / {f.client:.0f} |"
        )


def _writes_table(writes: Sequence[Comparison]) -> None:
    print(
        "| Bookworm writes | read models caught up after the round, ms "
        "| lag of each write, commit to every read model, p50 / p99 ms | appends/s end to end |"
    )
    print("|---|---|---|---|")
    for c in writes:
        assert c.writes is not None
        w = c.writes
        lagged = (
            f"{statistics.median(w.lagged) * 1000:.0f} / {percentile(w.lagged, 0.99) * 1000:.0f}"
            if w.lagged
            else "-"
        )
        print(
            f"| {c.label.split(' / ')[0]} | {statistics.median(w.lags) * 1000:.0f} | {lagged} "
            f"| {statistics.median(w.end_to_end):,.0f} |"
        )


class _Medians:
    """The median of each figure over one side's rounds, formatted for the table."""

    def __init__(self, rounds: Sequence[Round]) -> None:
        self.rate = statistics.median(r.rate for r in rounds)
        self.p99 = _median(rounds, lambda r: r.p99_ms)
        self.latency = f"{_cell(_median(rounds, lambda r: r.p50_ms), 1)} / {_cell(self.p99, 0)}"
        server, database = _median(rounds, lambda r: r.server_us), _median(rounds, lambda r: r.database_us)
        self.cpu = f"{_cell(server, 0)} + {_cell(database, 0)}"
        self.failed = sum(r.errors.total() for r in rounds)
        self.client = statistics.median(r.client_us for r in rounds)


def _median(rounds: Sequence[Round], figure: Callable[[Round], float | None]) -> float | None:
    values = [v for r in rounds if (v := figure(r)) is not None]
    return statistics.median(values) if values else None


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
