"""Checkout saga state and the notification outbox.

`finance.checkouts` is the checkout saga's durable state, one row per order. `notification.recipients`
remembers whom to write about an order (only OrderPlaced carries the address), and
`notification.outbox` holds every mail until it is sent; (order_id, kind) is unique, so a redelivered
event queues its mail once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from migrations.script import run_script

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE SCHEMA finance;
CREATE TABLE finance.checkouts (
    order_id       uuid        PRIMARY KEY,
    checkout_id    uuid        NOT NULL UNIQUE,
    basket_id      uuid        NOT NULL,
    customer_id    uuid        NOT NULL,
    stage          text        NOT NULL
                   CHECK (stage IN ('CHECKING_OUT', 'AWAITING_COMPLETION', 'COMPLETED', 'CANCELLED')),
    attempts       integer     NOT NULL CHECK (attempts >= 1),
    correlation_id text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE SCHEMA notification;
CREATE TABLE notification.recipients (
    order_id   uuid        PRIMARY KEY,
    buyer_id   uuid        NOT NULL,
    name       text        NOT NULL,
    email      text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE notification.outbox (
    id              uuid        PRIMARY KEY,
    order_id        uuid        NOT NULL,
    kind            text        NOT NULL
                    CHECK (kind IN ('ORDER_RECEIVED', 'ORDER_COMPLETED', 'ORDER_CANCELLED')),
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
    attempts        integer     NOT NULL DEFAULT 0,
    -- NULL once sent, or given up after the last attempt.
    next_attempt_at timestamptz DEFAULT now(),
    last_error      text,
    -- Not now(): the mails one batch queues are listed in the order they were queued.
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at         timestamptz,
    UNIQUE (order_id, kind)
);
CREATE INDEX outbox_due ON notification.outbox (next_attempt_at) WHERE status <> 'SENT';
CREATE INDEX outbox_sent ON notification.outbox (sent_at) WHERE status = 'SENT';
CREATE INDEX outbox_newest ON notification.outbox (created_at DESC, id DESC);
"""

DOWNGRADE = """
DROP SCHEMA notification CASCADE;
DROP SCHEMA finance CASCADE;
DELETE FROM bus.checkpoints WHERE name IN ('checkout-saga', 'notifications');
DELETE FROM bus.scheduled WHERE kind IN ('checkout-timeout', 'send-mail', 'purge-mail');
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
