"""Order mails against real PostgreSQL, Redis and a real SMTP server (aiosmtpd): queue, send, retry, purge."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from app.bus.scheduler import PERIODIC_KEY, Scheduler
from app.bus.workers import Workers
from app.domain.errors import ValidationError
from app.events.base import Event, Metadata
from app.events.ordering import OrderCancelled, OrderCompleted, OrderLine, OrderPlaced
from app.eventstore import START, Position, RecordedEvent
from app.ids import basket_id_of, new_id
from app.notifications.mailer import LogMailer, Mailer, SmtpMailer
from app.notifications.sender import SEND_MAIL, MailSender, RetryPolicy
from app.processes.notification_outbox import OVER_LIMIT, UNVERIFIED, NotificationOutbox
from app.queries.notifications import NotificationQueries
from app.queries.paging import encode_cursor
from app.settings import Settings
from tests.e2e.mailbox import Mailbox
from tests.e2e.process import free_port
from tests.integration.bus_support import BusEnv, bus_env, wait_until
from tests.integration.draining import drain

SENDER = "Bookworm <no-reply@shop.example>"
QUICK = RetryPolicy(first=0.05, cap=0.2, attempts=10)


class RefusingMailbox(Mailbox):
    """A mailbox whose server answers DATA with a temporary failure while `refusing` is set."""

    refusing = True

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refusing:
            return "451 Mailbox busy, try again later"
        return await super().handle_DATA(server, session, envelope)


@dataclass
class Post:
    """One database with the outbox consumer and a way to feed it order events."""

    env: BusEnv
    outbox: NotificationOutbox
    last: Position = START

    async def order(
        self,
        *later: str,
        email: str | None = "alice@example.com",
        verified: bool = True,
        buyer: str | None = None,
    ) -> str:
        """Append OrderPlaced and then each of `later` ("completed", "cancelled"); return the order id."""
        order, buyer = new_id(), buyer or new_id()
        await self.append(order, placed(order, buyer, email, verified))
        for what in later:
            event: Event = (
                OrderCompleted(order_id=order, buyer_id=buyer)
                if what == "completed"
                else OrderCancelled(order_id=order, buyer_id=buyer, reason="Checkout timed out.")
            )
            await self.append(order, event)
        return order

    async def append(self, order: str, event: Event) -> None:
        version = len(await self.env.store.read_stream(order))
        async with self.env.pool.acquire() as conn, conn.transaction():
            position = await self.env.store.append(
                conn,
                stream_id=order,
                stream_type="Order",
                expected_version=version,
                events=[event],
                metadata=Metadata(actor="test", correlation_id=order),
            )
        self.last = max(self.last, position)

    async def queue(self) -> list[RecordedEvent]:
        """Run outbox batches as the consumer runner does, until it passed what the test appended."""
        return (await drain(self.env.pool, self.env.store, self.outbox, self.last)).events

    async def mails(self, order: str | None = None) -> list[dict[str, Any]]:
        rows = await self.env.pool.fetch(
            "SELECT order_id::text, kind, recipient, subject, status, attempts, last_error, "
            "next_attempt_at, sent_at FROM notification.outbox "
            "WHERE $1::uuid IS NULL OR order_id = $1::uuid ORDER BY created_at",
            order,
        )
        return [dict(r) for r in rows]

    def sender(self, mailer: Mailer, backoff: RetryPolicy = QUICK) -> MailSender:
        return MailSender(self.env.pool, mailer, backoff=backoff)


def placed(order: str, buyer: str, email: str | None, verified: bool = True) -> OrderPlaced:
    return OrderPlaced(
        order_id=order,
        buyer_id=buyer,
        buyer_name="Alice",
        buyer_email=email,
        buyer_email_verified=verified,
        basket_id=basket_id_of(buyer),
        street="1 Main St",
        city="Springfield",
        province="Ontario",
        note=None,
        lines=(OrderLine(book_id=new_id(), name="Dune", quantity=1, unit_price=Decimal("9.99")),),
        total=Decimal("9.99"),
    )


def smtp(port: int) -> SmtpMailer:
    return SmtpMailer(host="127.0.0.1", port=port, sender=SENDER, timeout=5.0)


@pytest.fixture
async def post(make_settings: Callable[[], Settings]) -> AsyncIterator[Post]:
    async with bus_env(make_settings()) as env:
        yield Post(env, NotificationOutbox(Scheduler(env.pool)))


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with Mailbox.serving("127.0.0.1", free_port()) as box:
        yield box


# ---- the outbox


async def test_order_events_queue_one_mail_each(post: Post) -> None:
    completed = await post.order("completed")
    cancelled = await post.order("cancelled")
    await post.queue()

    assert [(m["kind"], m["status"], m["attempts"]) for m in await post.mails(completed)] == [
        ("ORDER_RECEIVED", "PENDING", 0),
        ("ORDER_COMPLETED", "PENDING", 0),
    ]
    kinds = {m["kind"]: m for m in await post.mails(cancelled)}
    assert set(kinds) == {"ORDER_RECEIVED", "ORDER_CANCELLED"}
    assert kinds["ORDER_CANCELLED"]["recipient"] == "alice@example.com"
    assert kinds["ORDER_CANCELLED"]["subject"].startswith("Bookworm order cancelled (#")
    woken = await post.env.pool.fetchval(
        "SELECT count(*) FROM bus.scheduled WHERE kind = $1 AND key LIKE 'queued:%' AND due_at <= now()",
        SEND_MAIL,
    )
    assert woken >= 1


async def test_redelivered_events_queue_nothing_more(post: Post) -> None:
    order = await post.order("completed")
    events = await post.queue()
    # The same batch again, past the checkpoint (as a retried dead letter would be applied).
    async with post.env.pool.acquire() as conn, conn.transaction():
        await post.outbox.apply(conn, events)
    assert len(await post.mails(order)) == 2


async def test_no_mail_for_a_buyer_without_a_usable_address(post: Post) -> None:
    orders = [await post.order("completed", email=email) for email in (None, "not an address")]
    await post.queue()
    for order in orders:
        assert await post.mails(order) == []


async def test_events_of_an_order_never_placed_queue_nothing(post: Post) -> None:
    order = new_id()
    await post.append(order, OrderCompleted(order_id=order, buyer_id=new_id()))
    await post.queue()
    assert await post.mails(order) == []


# ---- sending


async def test_mails_arrive_at_the_smtp_server(post: Post, mailbox: Mailbox) -> None:
    order = await post.order("completed")
    await post.queue()
    sender = post.sender(smtp(mailbox.port))

    assert await sender.send_due() == 2
    assert await sender.send_due() == 0

    received = {mail.subject.split(" (")[0]: mail for mail in mailbox.received()}
    assert set(received) == {"Bookworm order received", "Bookworm order completed"}
    mail = received["Bookworm order received"]
    assert mail.recipients == ("alice@example.com",)
    assert mail.sender == "no-reply@shop.example"
    assert mail.message["From"] == SENDER
    assert order in mail.text and "Total: 9.99" in mail.text
    ids = await post.env.pool.fetch(
        "SELECT id::text FROM notification.outbox WHERE order_id = $1::uuid", order
    )
    assert {m.message["Message-ID"] for m in received.values()} == {f"<{r[0]}@shop.example>" for r in ids}
    for row in await post.mails(order):
        assert (row["status"], row["attempts"], row["last_error"], row["next_attempt_at"]) == (
            "SENT",
            1,
            None,
            None,
        )
        assert row["sent_at"] is not None


async def test_an_unreachable_server_is_retried_with_backoff_until_it_answers(post: Post) -> None:
    order = await post.order()
    await post.queue()
    port = free_port()  # nothing listens there yet
    sender = post.sender(smtp(port), RetryPolicy(first=0.5, cap=1.0))

    assert await sender.send_due() == 1
    (failed,) = await post.mails(order)
    assert (failed["status"], failed["attempts"]) == ("FAILED", 1)
    assert "ConnectionRefusedError" in failed["last_error"]
    assert failed["next_attempt_at"] > dt.datetime.now(dt.UTC)
    assert await sender.send_due() == 0  # not due again before its backoff is over

    with Mailbox.serving("127.0.0.1", port) as box:

        async def sent() -> bool:
            await sender.send_due()
            return [m["status"] for m in await post.mails(order)] == ["SENT"]

        await wait_until(sent, what="the mail to be sent once the server answers")
        assert [m.recipients for m in box.received()] == [("alice@example.com",)]
    (row,) = await post.mails(order)
    assert (row["attempts"], row["last_error"]) == (2, None)


async def test_a_refusing_server_is_retried_until_it_accepts(post: Post) -> None:
    order = await post.order()
    await post.queue()
    with RefusingMailbox.serving("127.0.0.1", free_port()) as box:
        sender = post.sender(smtp(box.port))
        assert await sender.send_due() == 1
        (failed,) = await post.mails(order)
        assert failed["status"] == "FAILED"
        assert "451" in failed["last_error"]

        box.refusing = False

        async def sent() -> bool:
            await sender.send_due()
            return len(box.received()) == 1

        await wait_until(sent, what="the mail to be accepted")
    (row,) = await post.mails(order)
    assert row["status"] == "SENT" and row["attempts"] >= 2


async def test_sending_gives_up_after_the_last_attempt(post: Post) -> None:
    order = await post.order()
    await post.queue()
    sender = post.sender(smtp(free_port()), RetryPolicy(first=0.01, cap=0.01, attempts=2))
    assert await sender.send_due() == 1

    async def given_up() -> bool:
        await sender.send_due()
        (row,) = await post.mails(order)
        return row["attempts"] == 2 and row["next_attempt_at"] is None

    await wait_until(given_up, what="the second and last attempt")
    assert await sender.send_due() == 0
    assert [m["status"] for m in await post.mails(order)] == ["FAILED"]


async def test_without_smtp_mail_is_logged_and_marked_sent(
    post: Post, caplog: pytest.LogCaptureFixture
) -> None:
    order = await post.order("cancelled")
    await post.queue()
    with caplog.at_level(logging.INFO, logger="app.notifications.mailer"):
        assert await post.sender(LogMailer()).send_due() == 2
    assert [m["status"] for m in await post.mails(order)] == ["SENT", "SENT"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"mail to alice@example.com: Bookworm order cancelled (#{order[-8:]}) (order {order})" in logged
    # The body (customer-written text among it) is not in the log at INFO.
    assert "Reason: Checkout timed out." not in logged and "Hello" not in logged


async def test_the_log_mailer_writes_the_body_only_at_debug(
    post: Post, caplog: pytest.LogCaptureFixture
) -> None:
    await post.order("cancelled")
    await post.queue()
    with caplog.at_level(logging.DEBUG, logger="app.notifications.mailer"):
        await post.sender(LogMailer()).send_due()
    bodies = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("Reason: Checkout timed out." in body for body in bodies)


# ---- whom mail may go to, and how much


async def test_an_unverified_address_gets_no_mail(post: Post) -> None:
    order = await post.order("completed", verified=False)
    await post.queue()

    mails = await post.mails(order)
    assert [(m["kind"], m["status"], m["last_error"], m["next_attempt_at"]) for m in mails] == [
        ("ORDER_RECEIVED", "SKIPPED", UNVERIFIED, None)
    ]
    assert await post.sender(LogMailer()).send_due() == 0


async def test_trust_unverified_email_mails_any_address(post: Post) -> None:
    post.outbox = NotificationOutbox(Scheduler(post.env.pool), trust_unverified=True)
    order = await post.order("completed", verified=False)
    await post.queue()

    assert [m["status"] for m in await post.mails(order)] == ["PENDING", "PENDING"]


async def test_mails_past_the_hourly_limit_are_skipped_and_logged_once(
    post: Post, caplog: pytest.LogCaptureFixture
) -> None:
    post.outbox = NotificationOutbox(Scheduler(post.env.pool), max_per_hour=3)
    buyer, other = new_id(), new_id()
    orders = [await post.order("completed", buyer=buyer) for _ in range(3)]
    elsewhere = await post.order(buyer=other)
    with caplog.at_level(logging.INFO, logger="app.processes.notification_outbox"):
        await post.queue()

    statuses = [(m["status"], m["last_error"]) for order in orders for m in await post.mails(order)]
    assert statuses == [("PENDING", None)] * 3 + [("SKIPPED", OVER_LIMIT)] * 3
    assert [m["status"] for m in await post.mails(elsewhere)] == ["PENDING"]
    assert sum("reached 3 mails this hour" in r.getMessage() for r in caplog.records) == 1
    assert await post.sender(LogMailer()).send_due() == 4


async def test_skipped_mail_is_purged_like_sent_mail(post: Post) -> None:
    old, recent = await post.order(verified=False), await post.order(verified=False)
    await post.queue()
    await post.env.pool.execute(
        "UPDATE notification.outbox SET created_at = now() - interval '40 days' WHERE order_id = $1::uuid",
        old,
    )

    assert await post.sender(LogMailer()).purge(30.0) == 1
    assert await post.mails(old) == []
    assert [m["status"] for m in await post.mails(recent)] == ["SKIPPED"]


async def test_purge_deletes_only_old_sent_mail(post: Post) -> None:
    old, recent, failing = await post.order("completed"), await post.order(), await post.order()
    await post.queue()
    await post.sender(LogMailer()).send_due()
    pool = post.env.pool
    await pool.execute(
        "UPDATE notification.outbox SET sent_at = now() - interval '40 days' WHERE order_id = $1::uuid", old
    )
    await pool.execute(
        "UPDATE notification.outbox SET status = 'FAILED', created_at = now() - interval '40 days' "
        "WHERE order_id = $1::uuid",
        failing,
    )

    assert await post.sender(LogMailer()).purge(30.0) == 2
    assert await post.mails(old) == []
    assert len(await post.mails(recent)) == 1
    assert len(await post.mails(failing)) == 1
    # The order's last mail is gone, and so is its recipient; the others' stay.
    recipients = await pool.fetch("SELECT order_id::text FROM notification.recipients")
    assert {r[0] for r in recipients} == {recent, failing}
    assert await post.sender(LogMailer()).purge(30.0) == 0


async def test_the_workers_send_new_mail_at_once(
    make_settings: Callable[[], Settings], mailbox: Mailbox
) -> None:
    settings = dataclasses.replace(make_settings(), smtp_host="127.0.0.1", smtp_port=mailbox.port)
    async with bus_env(settings) as env:
        post = Post(env, NotificationOutbox(Scheduler(env.pool)))
        sender = MailSender(env.pool, smtp(mailbox.port))

        async def send() -> None:
            await sender.send_due()

        # A periodic run an hour apart: only the wake-up the consumer schedules can send promptly.
        workers = Workers(
            settings, env.pool, env.redis, env.store, [post.outbox], env, {SEND_MAIL: (3600.0, send)}
        )
        await workers.start()
        try:

            async def first_periodic_run_done() -> bool:
                due = await env.pool.fetchval(
                    "SELECT due_at FROM bus.scheduled WHERE kind = $1 AND key = $2", SEND_MAIL, PERIODIC_KEY
                )
                return due is not None and due > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)

            await wait_until(first_periodic_run_done, what="the first periodic send-mail run")
            order = await post.order()
            mail = await mailbox.wait_for(lambda m: order in m.text)
            assert mail.subject.startswith("Bookworm order received")
        finally:
            await workers.stop()


# ---- the admin query


async def test_notifications_are_listed_newest_first_with_filters(post: Post) -> None:
    first, second = await post.order("completed"), await post.order()
    await post.queue()
    await post.sender(LogMailer()).send_due()
    queries = NotificationQueries(post.env.pool)

    everything = await queries.list_notifications(first=10)
    assert everything.total_count == 3
    assert [n.order_id for n in everything.nodes] == [second, first, first]
    page = await queries.list_notifications(first=2)
    assert page.has_next_page
    rest = await queries.list_notifications(first=2, after=page.end_cursor)
    assert [n.id for n in page.nodes + rest.nodes] == [n.id for n in everything.nodes]
    assert not rest.has_next_page

    only = await queries.list_notifications(order_id=first, status="SENT")
    assert {n.kind for n in only.nodes} == {"ORDER_RECEIVED", "ORDER_COMPLETED"}
    assert (await queries.list_notifications(status="FAILED")).total_count == 0


@pytest.mark.parametrize(
    "arguments",
    [{"first": 0}, {"first": 101}, {"after": "garbage"}, {"status": "LOST"}, {"order_id": "not-an-id"}],
)
async def test_bad_listing_arguments_are_validation_errors(post: Post, arguments: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        await NotificationQueries(post.env.pool).list_notifications(**arguments)


async def test_a_cursor_of_another_list_is_refused(post: Post) -> None:
    cursor = encode_cursor("author:name", "Ann", new_id())
    with pytest.raises(ValidationError):
        await NotificationQueries(post.env.pool).list_notifications(after=cursor)
