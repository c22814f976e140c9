"""Event store, idempotency, reservations, bus checkpoints, leases, dead letters, scheduler, read.changes.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from migrations.script import run_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE SCHEMA IF NOT EXISTS eventstore;
CREATE SCHEMA IF NOT EXISTS bus;
CREATE SCHEMA IF NOT EXISTS read;

CREATE TABLE eventstore.events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL,
    stream_type     text        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL DEFAULT 1,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_commit_order ON eventstore.events (transaction_id, global_position);

-- Events are facts: the log is append-only.
CREATE FUNCTION eventstore.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'eventstore.events is append-only';
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON eventstore.events
    FOR EACH ROW EXECUTE FUNCTION eventstore.refuse_change();

CREATE TABLE eventstore.idempotency (
    actor        text        NOT NULL,
    key          text        NOT NULL,
    command_type text        NOT NULL,
    result       jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, key)
);

-- Set rules across aggregates (unique names, one review per reader and book).
CREATE TABLE eventstore.reservations (
    scope      text        NOT NULL,
    value      text        NOT NULL,
    owner      text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, value)
);

-- Which streams refer to which: refuses deleting what is still referenced.
CREATE TABLE eventstore.references (
    target_stream text NOT NULL,
    source_stream text NOT NULL,
    PRIMARY KEY (target_stream, source_stream)
);
CREATE INDEX references_by_source ON eventstore.references (source_stream);

CREATE TABLE bus.checkpoints (
    name            text        PRIMARY KEY,
    transaction_id  bigint      NOT NULL DEFAULT 0,
    global_position bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bus.leases (
    name       text        PRIMARY KEY,
    owner      text        NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE bus.dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer        text        NOT NULL,
    transaction_id  bigint      NOT NULL,
    global_position bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    stream_id       text        NOT NULL,
    error           text        NOT NULL,
    attempts        integer     NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    UNIQUE (consumer, event_id)
);

CREATE TABLE bus.scheduled (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text        NOT NULL,
    key        text        NOT NULL,
    payload    jsonb       NOT NULL DEFAULT '{}',
    due_at     timestamptz NOT NULL,
    attempts   integer     NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, key)
);
CREATE INDEX scheduled_due ON bus.scheduled (due_at);

-- One row per projection: its active table version and its checkpoint, written in its own transaction.
CREATE TABLE read.projections (
    name            text        PRIMARY KEY,
    version         integer     NOT NULL,
    transaction_id  bigint      NOT NULL DEFAULT 0,
    global_position bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The log subscriptions resume from; retention is bounded.
CREATE TABLE read.changes (
    topic           text        NOT NULL,
    transaction_id  bigint      NOT NULL,
    global_position bigint      NOT NULL,
    kind            text        NOT NULL,
    entity          text        NOT NULL,
    entity_id       text        NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, transaction_id, global_position, entity_id)
);
CREATE INDEX changes_recorded_at ON read.changes (recorded_at);
"""

DOWNGRADE = """
DROP SCHEMA IF EXISTS read CASCADE;
DROP SCHEMA IF EXISTS bus CASCADE;
DROP SCHEMA IF EXISTS eventstore CASCADE;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
