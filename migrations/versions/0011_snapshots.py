"""Snapshots: the state a stream folds to at a version, so that loading replays only the events after it.

One row per stream and fold (`name`: the aggregate, or another context's fold of that stream). A
snapshot is derived data: `state` is the fold of the stream's first `version` events, serialized in the
shape `schema_version` names; a reader ignores a row of another shape and replays the stream instead.
Deleting every row changes nothing but speed, and `bookworm verify` checks each row against a replay.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from migrations.script import run_script

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE eventstore.snapshots (
    stream_id       text        NOT NULL,
    name            text        NOT NULL,
    version         int         NOT NULL CHECK (version > 0),
    schema_version  int         NOT NULL,
    state           jsonb       NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, name)
);
"""

DOWNGRADE = "DROP TABLE eventstore.snapshots;"


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
