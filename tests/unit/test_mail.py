"""Order mails: what each says, who may receive one, the MIME form, and the retry schedule."""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal

import pytest

from app.domain.notification.mail import (
    MailKind,
    Recipient,
    is_address,
    order_cancelled,
    order_completed,
    order_received,
    recipient_of,
    reference,
)
from app.events.ordering import OrderLine, OrderPlaced
from app.ids import basket_id_of, new_id
from app.notifications.mailer import LogMailer, OutgoingMail, SmtpMailer, mailer_for
from app.notifications.sender import RetryPolicy
from app.settings import Settings

ORDER = "0190f3c2-7d1e-7a3b-9c4d-5e6f708192a3"
BUYER = new_id()
ALICE = Recipient(name="Alice Liddell", email="alice@example.com")
PLACED = OrderPlaced(
    order_id=ORDER,
    buyer_id=BUYER,
    buyer_name="Alice Liddell",
    buyer_email="alice@example.com",
    basket_id=basket_id_of(BUYER),
    street="1 Rabbit Hole",
    city="Oxford",
    province="Oxfordshire",
    note="Leave it with the Cheshire Cat.",
    lines=(
        OrderLine(book_id=new_id(), name="Dune", quantity=2, unit_price=Decimal("9.5")),
        OrderLine(book_id=new_id(), name="Emma", quantity=1, unit_price=Decimal("12.00")),
    ),
    total=Decimal("31.00"),
)


def test_order_received_lists_lines_total_and_address() -> None:
    letter = order_received(PLACED, ALICE)
    assert letter.kind is MailKind.ORDER_RECEIVED
    assert letter.order_id == ORDER
    assert letter.recipient == "alice@example.com"
    assert letter.subject == "Bookworm order received (#708192a3)"
    assert letter.body.startswith("Hello Alice Liddell,\n")
    assert ORDER in letter.body
    assert "  2 x Dune at 9.50 = 19.00\n" in letter.body
    assert "  1 x Emma at 12.00 = 12.00\n" in letter.body
    assert "Total: 31.00" in letter.body
    assert "1 Rabbit Hole\n  Oxford, Oxfordshire" in letter.body
    assert "Your note: Leave it with the Cheshire Cat." in letter.body


def test_order_received_without_a_note_says_nothing_of_one() -> None:
    assert "note" not in order_received(replace(PLACED, note=None), ALICE).body


def test_order_completed() -> None:
    letter = order_completed(ORDER, ALICE)
    assert letter.kind is MailKind.ORDER_COMPLETED
    assert letter.subject == "Bookworm order completed (#708192a3)"
    assert f"your order {ORDER} is completed." in letter.body


def test_order_cancelled_gives_the_reason() -> None:
    letter = order_cancelled(ORDER, "Checkout timed out.", ALICE)
    assert letter.kind is MailKind.ORDER_CANCELLED
    assert letter.subject == "Bookworm order cancelled (#708192a3)"
    assert "Reason: Checkout timed out." in letter.body


def test_order_cancelled_without_a_reason() -> None:
    assert "Reason" not in order_cancelled(ORDER, None, ALICE).body


def test_a_nameless_buyer_is_greeted_plainly() -> None:
    assert order_completed(ORDER, Recipient(name="", email="x@example.com")).body.startswith("Hello,\n")


def test_the_reference_is_the_random_end_of_the_id() -> None:
    assert reference(ORDER) == "708192a3"


def test_the_recipient_comes_from_the_placed_order() -> None:
    assert recipient_of(PLACED) == ALICE
    assert recipient_of(replace(PLACED, buyer_email="  bob@example.com ")) == Recipient(
        name="Alice Liddell", email="bob@example.com"
    )
    assert recipient_of(replace(PLACED, buyer_name=" Alice \n Liddell ")) == ALICE


@pytest.mark.parametrize(
    "email",
    [
        None,
        "",
        "   ",
        "alice",
        "alice@",
        "@example.com",
        "alice@localhost",
        "a@b@example.com",
        "alice @example.com",
        "alice@example.com\r\nBcc: eve@example.com",
        "alice@example.com\nX: y",
        "Alice <alice@example.com>",
        "alice@example.com, eve@example.com",
        "a" * 250 + "@example.com",
    ],
)
def test_no_mail_without_a_usable_address(email: str | None) -> None:
    assert recipient_of(replace(PLACED, buyer_email=email)) is None


@pytest.mark.parametrize("address", ["alice@example.com", "a.b+shop@mail.example.co.uk", "x@y.z"])
def test_usable_addresses(address: str) -> None:
    assert is_address(address)


def test_the_smtp_message_carries_sender_recipient_subject_and_a_stable_message_id() -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=25, sender="Bookworm <no-reply@shop.example>")
    mail = OutgoingMail(id=ORDER, recipient="alice@example.com", subject="Hi", body="Hello Alice,\n")
    message = mailer.message(mail)
    assert message["From"] == "Bookworm <no-reply@shop.example>"
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Hi"
    assert message["Message-ID"] == f"<{ORDER}@shop.example>"
    assert message.get_content() == "Hello Alice,\n"


async def test_the_log_mailer_writes_one_line_and_the_body_only_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = "Hello Alice,\n\nwe received your order:\n  2 x Dune\n\nLeave it with the Cheshire Cat.\n"
    mail = OutgoingMail(
        id=new_id(), recipient="alice@example.com", subject="Order received", body=body, order_id=ORDER
    )

    with caplog.at_level(logging.INFO, logger="app.notifications.mailer"):
        await LogMailer().send(mail)
    assert [record.getMessage() for record in caplog.records] == [
        f"mail to alice@example.com: Order received (order {ORDER})"
    ]

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="app.notifications.mailer"):
        await LogMailer().send(mail)
    assert len(caplog.records) == 2 and caplog.records[1].levelno == logging.DEBUG
    assert body in caplog.records[1].getMessage()


def test_smtp_is_used_only_when_a_host_is_set() -> None:
    assert isinstance(mailer_for(Settings()), LogMailer)
    smtp = mailer_for(Settings(smtp_host="mail.example", smtp_port=2525, smtp_starttls=True))
    assert smtp == SmtpMailer(host="mail.example", port=2525, sender=Settings().mail_from, starttls=True)


def test_backoff_doubles_up_to_the_cap_then_gives_up() -> None:
    backoff = RetryPolicy(first=10.0, cap=60.0, attempts=5)
    assert [backoff.delay(n) for n in range(1, 6)] == [10.0, 20.0, 40.0, 60.0, None]
