"""The planner's statistics kept up with tables that grow in bursts: ANALYZE once a table has doubled.

A session keeps its plan of a prepared statement (the statement caches of asyncpg's pools) until a table it
reads changes shape or gets new statistics. A plan made while a table was small reads all of it: a hash
join over every author to name a new book's authors, a sequential scan to find one row. Once the table
has grown, that plan costs a scan of the whole table per statement, until autovacuum's ANALYZE renews it,
which it does after a tenth of the table has changed but looks at most once a minute (autovacuum_naptime).
A burst (an import, `bookworm seed`, a benchmark's thousands of authors) then makes each of the next
minute's new books scan every author: the catalog's lag went from 0.1 to 2 s that way (bench/README.md,
"Plans made while the tables were small").

`analyze_grown` runs, every few seconds from the workers' scheduler, what autovacuum would run later:
ANALYZE of each table that holds at least `least` rows and at least twice as many as at its last ANALYZE
(or was never analyzed). The new statistics invalidate every session's plans of that table, which are then
made for its size now. A table whose rows change without growing (a checkpoint or a lease updated at every
batch) keeps its plans, which still fit it: it is left to autovacuum. Each table is analyzed about
log2(size / least) times as it grows, each ANALYZE reading a sample of at most 30,000 rows (the default
statistics target), so a table that grows slowly is left to autovacuum.
"""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger(__name__)

ANALYZE_GROWN = "analyze-grown"  # the workers' periodic job (bus.scheduled's kind)
ANALYZE_EVERY = 5.0  # seconds between two looks at the tables' counters
LEAST_ROWS = 1_000  # rows a table holds before it is analyzed here
LOCK_TIMEOUT_MS = 1_000

# The database's own tables (not sessions' temporary ones) that grew: their live rows now against the row
# count of their last ANALYZE or VACUUM (-1 when there was none). The counts are the cumulative
# statistics', which each backend flushes within a second or so of its transactions.
_GROWN = """
SELECT format('%I.%I', s.schemaname, s.relname)
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.n_live_tup >= $1 AND s.n_live_tup >= 2 * c.reltuples
  AND c.relpersistence <> 't'
ORDER BY s.schemaname, s.relname
"""


async def analyze_grown(pool: asyncpg.Pool, least: int = LEAST_ROWS) -> list[str]:
    """ANALYZE every table that has about doubled since its last ANALYZE; return those analyzed."""
    analyzed: list[str] = []
    for row in await pool.fetch(_GROWN, least):
        table = row[0]  # a name the server quoted (format's %I)
        try:
            async with pool.acquire() as conn, conn.transaction():
                # Writes never wait for ANALYZE's lock; another ANALYZE or a VACUUM holds it, and one that
                # is already at work on the table is let be rather than waited for (the next look sees
                # whether it renewed the statistics).
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
                await conn.execute(f"ANALYZE {table}")
        except asyncpg.LockNotAvailableError:
            log.info(
                "planner statistics of %s: an ANALYZE or VACUUM is at work on it; looking again later", table
            )
            continue
        except asyncpg.UndefinedTableError:
            continue  # dropped since (a rebuild's old generation)
        analyzed.append(table)
    if analyzed:
        log.info("planner statistics renewed for %s", ", ".join(analyzed))
    return analyzed
