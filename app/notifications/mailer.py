"""The mailer port and its adapters: SMTP (stdlib smtplib in a thread) and the log."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Protocol

from app.settings import Settings

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 10.0  # seconds for each SMTP exchange; the sender retries later


@dataclass(frozen=True, kw_only=True)
class OutgoingMail:
    """One outbox row on its way out; `id` makes its Message-ID, so a resend can be recognised."""

    id: str
    recipient: str
    subject: str
    body: str
    order_id: str = ""


class MailError(Exception):
    """The mail was not accepted; sending it again later may succeed."""


class ServerUnavailable(MailError):
    """The mail server could not be reached: later mails would fail the same way for now."""


class Mailer(Protocol):
    """Where mails go."""

    async def send(self, mail: OutgoingMail) -> None:
        """Deliver `mail`; raise MailError when it was not accepted."""
        ...


class LogMailer:
    """Writes each mail to the log instead of sending it (no SMTP server configured)."""

    async def send(self, mail: OutgoingMail) -> None:
        """Log `mail` as sent: one line at INFO, the body only at DEBUG (it holds customer-written text)."""
        log.info("mail to %s: %s (order %s)", mail.recipient, mail.subject, mail.order_id or "?")
        log.debug("mail %s body:\n%s", mail.id, mail.body)


@dataclass(frozen=True, kw_only=True)
class SmtpMailer:
    """Sends through an SMTP server, optionally with STARTTLS and a login."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = SMTP_TIMEOUT

    async def send(self, mail: OutgoingMail) -> None:
        """Deliver `mail` to the SMTP server; raise MailError when it refuses or cannot be reached."""
        message = self.message(mail)
        try:
            # smtplib blocks: run it in a thread so the event loop keeps serving.
            await asyncio.to_thread(self._deliver, message)
        except smtplib.SMTPException as exc:
            raise MailError(_describe(exc)) from None
        except OSError as exc:  # refused, unreachable, timed out, TLS failures
            raise ServerUnavailable(_describe(exc)) from None

    def message(self, mail: OutgoingMail) -> EmailMessage:
        """Return the MIME message of `mail`."""
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or "bookworm.local"
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.recipient
        message["Subject"] = mail.subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{mail.id}@{domain}>"
        message.set_content(mail.body)
        return message

    def _deliver(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


def mailer_for(settings: Settings) -> Mailer:
    """Return the SMTP mailer when `smtp_host` is set, else the log mailer."""
    if not settings.smtp_host:
        return LogMailer()
    return SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.mail_from,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
    )
