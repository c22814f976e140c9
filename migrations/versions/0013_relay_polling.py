"""The relay's polling flag: while it polls, appends do not NOTIFY it.

Every append NOTIFYed the relay in its statement. Under load the relay reads again after each gather
anyway, so those notifications only cost: PostgreSQL serializes the commits of notifying transactions
(one queue, one lock), signals the listening backend once per commit, and that backend and the relay's
loop wake for each. Measured on a 2-core machine at about 1,000 writes/s: 35-40 µs of the relay backend's
CPU per write, 20-35 µs of the worker's and about 15 µs of the appending backend's.

`bus.relay_state.polling` is true while the leading relay reads again after every batch by itself. An
append calls `eventstore.wake_relay()` once its rows are inserted, which NOTIFYs only when the relay is
not polling. The function is VOLATILE PL/pgSQL, so its query takes a snapshot of its own (READ
COMMITTED), after the append's transaction id was assigned: an append that still saw `polling` true has
a transaction id below the xmax of any snapshot taken once the relay's reset committed, and the relay
waits for those to end before it reads for the last time and sleeps (app/bus/relay.py).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from migrations.script import run_script

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE bus.relay_state (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    polling boolean NOT NULL DEFAULT false
);
INSERT INTO bus.relay_state DEFAULT VALUES;

CREATE FUNCTION eventstore.wake_relay() RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT coalesce((SELECT polling FROM bus.relay_state), false) THEN
        PERFORM pg_notify('bookworm_events', '');
    END IF;
END
$$;
"""

DOWNGRADE = """
DROP FUNCTION eventstore.wake_relay();
DROP TABLE bus.relay_state;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
