"""The commit-order horizon of this database: other databases' transactions no longer hold it back.

Every reader of all events reads only transactions below the oldest one still running. That
was `pg_snapshot_xmin(pg_current_snapshot())`, and transaction ids are the server's, not a database's:
a transaction of *another* database on the same server (a migration, CREATE DATABASE, a test or a job
left idle in transaction) held back the relay, and with it every read model, for as long as it ran. Under
load that was every commit-order reader stalled for up to seconds (bench/README.md, "Lag spikes").

`eventstore.commit_horizon()` is the lowest running transaction id that may still write to this database:
the snapshot's running ids, less those that a backend connected to another database holds, or the
snapshot's xmax when none is left. A backend never changes database, so such a transaction can never
append here. Only a positive match skips an id: an id whose backend cannot be seen (another role's
session without pg_read_all_stats, a prepared transaction, a backend still starting) still holds the
horizon back, as before.

The match reads backend status after the snapshot was taken (`pg_stat_clear_snapshot` first drops a copy
an earlier statement of the transaction kept). A status entry's database and its transaction id are read
one after the other, so in between the backend could leave and another take its slot; but a backend that
arrived after the snapshot holds an id that is not among the snapshot's running ones, so it cannot make
one of those look foreign.

STABLE: its queries run on the caller's snapshot, the one the caller reads events with. Callers evaluate
it once per statement, as `(SELECT eventstore.commit_horizon())`.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from migrations.script import run_script

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE FUNCTION eventstore.commit_horizon() RETURNS xid8 LANGUAGE plpgsql STABLE AS $$
DECLARE
    snapshot pg_snapshot := pg_current_snapshot();
BEGIN
    IF pg_snapshot_xmin(snapshot) = pg_snapshot_xmax(snapshot) THEN
        RETURN pg_snapshot_xmin(snapshot);  -- nothing runs
    END IF;
    PERFORM pg_stat_clear_snapshot();
    RETURN coalesce(
        (SELECT min(running) FROM pg_snapshot_xip(snapshot) AS running
         WHERE running::xid NOT IN (
             SELECT backend_xid FROM pg_stat_get_activity(NULL)
             WHERE backend_xid IS NOT NULL
               AND datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))),
        pg_snapshot_xmax(snapshot));
END
$$;
"""

DOWNGRADE = """
DROP FUNCTION eventstore.commit_horizon();
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
