"""A projection's transactions no longer hold commit order back: they can never append.

A projection's batch holds a transaction id from its first row lock to its COMMIT, and the commit horizon
(migration 0014) had to wait for it like any other transaction of this database: it might append. Under
a burst the catalog's batches held every commit-order reader, the relay first, for 100-800 ms each, and the
next batch grew as large while it waited (bench/README.md, "Lag spikes"). A projection never appends.

Now that holds by construction. `eventstore.as_projector()` names the rest of the calling transaction a
projector's: it sets `application_name` to `bookworm-projector` for the transaction (as `SET LOCAL`), and
refuses a transaction that has already appended, whose events the horizon would then pass by. A transaction
so named cannot insert into `eventstore.events`: a statement trigger refuses it. Every projection batch and
rebuild transaction calls it. `eventstore.commit_horizon()` leaves out the running ids of backends of this
database showing that name, as it leaves out other databases'. Both read the same setting: PostgreSQL
reports a backend's `application_name` to `pg_stat_activity` whenever it is set, and a transaction's own
setting is undone only when it ends. (A session that sets the name itself, bypassing the function after
an append, is the one way around this; nothing of Bookworm's does.)

As in 0014, only a positive match skips an id, and the name and the transaction id of a status entry are
read after the snapshot: a backend whose next transaction got an id after the snapshot cannot make one of
the snapshot's running ids look like a projector's.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from migrations.script import run_script

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# app.db.PROJECTOR_APPLICATION; written out so that this revision keeps meaning what it meant.
PROJECTOR = "bookworm-projector"

# The horizon of migration 0014, of which the running ids that `skipped` matches (a pg_stat_get_activity row)
# are left out.
_HORIZON = """
CREATE OR REPLACE FUNCTION eventstore.commit_horizon() RETURNS xid8 LANGUAGE plpgsql STABLE AS $$
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
             WHERE backend_xid IS NOT NULL AND ({skipped}))),
        pg_snapshot_xmax(snapshot));
END
$$;
"""
_ELSEWHERE = "datid <> (SELECT oid FROM pg_database WHERE datname = current_database())"

UPGRADE = f"""
CREATE FUNCTION eventstore.as_projector() RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF EXISTS (SELECT FROM eventstore.events WHERE transaction_id = pg_current_xact_id_if_assigned()) THEN
        RAISE EXCEPTION 'a transaction that appended events cannot become a projector''s';
    END IF;
    PERFORM set_config('application_name', '{PROJECTOR}', true);
END
$$;
CREATE FUNCTION eventstore.refuse_projector_appends() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = '{PROJECTOR}' THEN
        RAISE EXCEPTION 'a projector transaction cannot append events'
            USING HINT = 'commit order skips these transactions (migration 0015)';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_not_from_projectors BEFORE INSERT ON eventstore.events
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore.refuse_projector_appends();
{_HORIZON.format(skipped=f"{_ELSEWHERE} OR application_name = '{PROJECTOR}'")}"""

DOWNGRADE = f"""
{_HORIZON.format(skipped=_ELSEWHERE)}
DROP TRIGGER events_not_from_projectors ON eventstore.events;
DROP FUNCTION eventstore.refuse_projector_appends();
DROP FUNCTION eventstore.as_projector();
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
