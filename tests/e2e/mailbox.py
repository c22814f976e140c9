"""A real SMTP server (aiosmtpd) for the e2e tests: it keeps every message the server sends."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.e2e.clients import WAIT


@dataclass(frozen=True)
class Mail:
    """One delivered message: the envelope's sender and recipients, and the parsed message."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def text(self) -> str:
        """The plain-text body."""
        body = self.message.get_body(preferencelist=("plain",))
        return "" if body is None else str(body.get_content())  # type: ignore[attr-defined]


class Mailbox:
    """Messages received by the SMTP server, in arrival order; `wait_for` waits for one to arrive."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.messages: list[Mail] = []
        self._lock = threading.Lock()  # the SMTP server delivers from its own thread and event loop
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @classmethod
    @contextmanager
    def serving(cls, host: str, port: int) -> Iterator[Self]:
        """Run an SMTP server on host:port that delivers into a new mailbox, until exit."""
        box = cls(host, port)
        controller = Controller(box, hostname=host, port=port)
        controller.start()
        try:
            yield box
        finally:
            controller.stop()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """aiosmtpd's hook: keep the message."""
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed: Any = message_from_bytes(content, policy=policy.default)
        mail = Mail(str(envelope.mail_from), tuple(envelope.rcpt_tos), parsed)
        with self._lock:
            self.messages.append(mail)
            for loop, arrived in self._waiters:
                loop.call_soon_threadsafe(arrived.set)
        return "250 Message accepted for delivery"

    def received(self, predicate: Callable[[Mail], bool] = lambda mail: True) -> list[Mail]:
        """Return the messages so far that match `predicate`."""
        with self._lock:
            return [mail for mail in self.messages if predicate(mail)]

    async def wait_for(
        self,
        predicate: Callable[[Mail], bool],
        timeout: float = WAIT,  # noqa: ASYNC109 - a bound per call reads better in the tests
    ) -> Mail:
        """Return the first message matching `predicate`, waiting up to `timeout` seconds for it."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                while not (found := self.received(predicate)):
                    await waiter[1].wait()
                    waiter[1].clear()
        except TimeoutError:
            summary = [(mail.recipients, mail.subject) for mail in self.received()]
            raise AssertionError(f"no matching mail within {timeout:g} s; received: {summary}") from None
        finally:
            with self._lock:
                self._waiters.remove(waiter)
        return found[0]
