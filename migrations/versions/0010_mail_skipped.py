"""Skipped mails: an outbox row may be SKIPPED (unverified address, or the customer's hourly limit).

A skipped row is never sent; `last_error` says why. `recipients.buyer_id` is indexed for the
per-customer hourly count.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from migrations.script import run_script

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE notification.outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE notification.outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('PENDING', 'SENT', 'FAILED', 'SKIPPED'));
CREATE INDEX recipients_buyer ON notification.recipients (buyer_id);
"""

DOWNGRADE = """
DROP INDEX notification.recipients_buyer;
DELETE FROM notification.outbox WHERE status = 'SKIPPED';
ALTER TABLE notification.outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE notification.outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('PENDING', 'SENT', 'FAILED'));
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
