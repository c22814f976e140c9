"""The sender: sends due outbox mails, retries failures with exponential backoff, purges old ones.

Rows are claimed in a short transaction of their own (FOR UPDATE SKIP LOCKED, then their next
attempt is moved a claim period ahead) and sent outside it, so no transaction stays open during
SMTP and two processes never send the same mail at once. A process that dies mid-send leaves the
mail due again once the claim period is over: delivery is at least once, and the Message-ID is the
outbox id, so a receiver can tell a resend.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from app.backoff import nth_delay
from app.notifications.mailer import Mailer, MailError, OutgoingMail, ServerUnavailable

log = logging.getLogger(__name__)

SEND_MAIL = "send-mail"
PURGE_MAIL = "purge-mail"

_CLAIM = """
UPDATE notification.outbox AS o
SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $1)
FROM (
    SELECT id FROM notification.outbox
    WHERE status <> 'SENT' AND next_attempt_at <= now()
    ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED
) AS due
WHERE o.id = due.id
RETURNING o.id::text, o.recipient, o.subject, o.body, o.attempts, o.order_id::text
"""
_SENT = """
UPDATE notification.outbox SET status = 'SENT', sent_at = now(), next_attempt_at = NULL, last_error = NULL
WHERE id = $1::uuid
"""
# $3 NULL: that was the last attempt; the row stays FAILED for an admin to see.
_FAILED = """
UPDATE notification.outbox
SET status = 'FAILED', last_error = $2, next_attempt_at = now() + make_interval(secs => $3)
WHERE id = $1::uuid
"""
_PURGE = """
WITH purged AS (
    DELETE FROM notification.outbox
    WHERE (status = 'SENT' AND sent_at < now() - make_interval(secs => $1))
       OR (status = 'SKIPPED' AND created_at < now() - make_interval(secs => $1))
    RETURNING order_id, kind
), forgotten AS (
    -- The order's last mail is gone: nothing more will be written to its buyer.
    DELETE FROM notification.recipients AS r USING purged AS p
    WHERE r.order_id = p.order_id AND p.kind <> 'ORDER_RECEIVED'
)
SELECT count(*) FROM purged
"""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """When to try a failed mail again: first, doubling, capped, at most `attempts` tries in all."""

    first: float = 10.0
    cap: float = 3600.0
    attempts: int = 10

    def delay(self, attempts: int) -> float | None:
        """Return seconds until the next try after `attempts` tries; None when that was the last."""
        if attempts >= self.attempts:
            return None
        return nth_delay(self.first, self.cap, attempts - 1)


class MailSender:
    """Sends the outbox's due mails through a Mailer."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        mailer: Mailer,
        *,
        backoff: RetryPolicy | None = None,
        max_per_run: int = 100,
        claim_for: float = 300.0,
    ) -> None:
        self._pool = pool
        self._mailer = mailer
        self._backoff = backoff or RetryPolicy()
        self._max_per_run = max_per_run
        self._claim_for = claim_for

    async def send_due(self) -> int:
        """Send mails that are due (new, or failed and past their backoff); return how many were tried.

        Stops early when the mail server cannot be reached: the rest would only wait for timeouts.
        """
        tried = 0
        while tried < self._max_per_run:
            row = await self._pool.fetchrow(_CLAIM, self._claim_for)
            if row is None:
                break
            tried += 1
            mail = OutgoingMail(id=row[0], recipient=row[1], subject=row[2], body=row[3], order_id=row[5])
            if not await self._send(mail, row[4]):
                break
        return tried

    async def purge(self, retention_days: float) -> int:
        """Delete mails sent (or skipped) more than `retention_days` ago; return how many."""
        count: int = await self._pool.fetchval(_PURGE, retention_days * 86400.0)
        return count

    async def _send(self, mail: OutgoingMail, attempts: int) -> bool:
        """Send one claimed mail and record the outcome; return False when the server is unreachable."""
        try:
            await self._mailer.send(mail)
        except ServerUnavailable as exc:
            await self._failed(mail, attempts, str(exc))
            return False
        except MailError as exc:
            await self._failed(mail, attempts, str(exc))
        except Exception as exc:
            log.exception("mail %s: unexpected error while sending", mail.id)
            await self._failed(mail, attempts, f"{type(exc).__name__}: {exc}"[:1000])
        else:
            await self._pool.execute(_SENT, mail.id)
        return True

    async def _failed(self, mail: OutgoingMail, attempts: int, error: str) -> None:
        delay = self._backoff.delay(attempts)
        if delay is None:
            log.error("mail %s: giving up after %d attempts: %s", mail.id, attempts, error)
        else:
            log.warning("mail %s failed (attempt %d, next in %.0f s): %s", mail.id, attempts, delay, error)
        await self._pool.execute(_FAILED, mail.id, error, delay)
