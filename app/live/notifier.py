"""Publishing change notices after a projection commit."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Protocol

from app import tracing
from app.aio import cancel_and_wait
from app.backoff import Backoff
from app.live.backend import CATCH_UP
from app.live.notices import ChangeNotice
from app.settings import Settings

log = logging.getLogger(__name__)

# The pseudo-topic whose CATCH_UP tells every subscriber of every topic, in every API process, to re-read
# read.changes: after lost notices, and when a consumer starts leading (its predecessor may have died
# between a commit and its publish).
EVERY_TOPIC = "*"
RETRY_FIRST, RETRY_CAP = 0.5, 5.0  # seconds between tries of a lost catch-up announcement


class Publisher(Protocol):
    """Where notices go: the pub/sub backend the API processes' broadcaster subscribes through."""

    async def publish_many(self, messages: Sequence[tuple[str, str]]) -> None:
        """Publish (channel, message) pairs in order; raise when Redis cannot take them."""
        ...


class Notifier:
    """Publish change notices on their topics' channels; a failure is logged, never raised.

    A batch's notices go out in one round trip (broadcaster publishes one message a call): a projection's
    batch of books announced each book on two topics, each a PUBLISH of its own.
    """

    def __init__(self, publisher: Publisher, settings: Settings) -> None:
        self._publisher = publisher
        self._settings = settings
        self._lost = False  # notices were lost and no catch-up has been announced since
        self._retry: asyncio.Task[None] | None = None

    async def publish(self, notices: Sequence[ChangeNotice]) -> None:
        """Publish each notice to its topic's channel, in the order read.changes replays them."""
        if self._lost and not await self.catch_up_everyone():
            return
        ordered = sorted(notices, key=lambda notice: (notice.position, notice.entity_id))
        with tracing.span("notify", attributes={"bookworm.notices": len(ordered)}):
            # Each cohort's push continues the trace from here.
            traceparent = tracing.traceparent()
            if traceparent is not None:
                ordered = [dataclasses.replace(notice, traceparent=traceparent) for notice in ordered]
            channel = self._settings.changes_channel
            if not await self._send([(channel(notice.topic), notice.to_json()) for notice in ordered]):
                self._lose()

    async def catch_up_everyone(self) -> bool:
        """Tell every subscriber to re-read read.changes (it may have missed notices); return whether sent."""
        if await self._send([(self._settings.changes_channel(EVERY_TOPIC), CATCH_UP)]):
            self._lost = False
            return True
        self._lose()
        return False

    async def close(self) -> None:
        """Stop retrying a catch-up announcement."""
        if self._retry is not None:
            await cancel_and_wait([self._retry])

    def _lose(self) -> None:
        # Announced again until it gets through, not only with the next notices: the lost ones may
        # have been the last for a long while, and their subscribers would wait for them until then.
        self._lost = True
        if self._retry is None or self._retry.done():
            self._retry = asyncio.create_task(self._announce_until_sent(), name="notifier catch-up")

    async def _announce_until_sent(self) -> None:
        backoff = Backoff(RETRY_FIRST, RETRY_CAP)
        while self._lost:
            await backoff.wait()
            if self._lost:  # a publish may have announced it meanwhile
                await self.catch_up_everyone()

    async def _send(self, messages: list[tuple[str, str]]) -> bool:
        try:
            await self._publisher.publish_many(messages)
        except Exception as error:  # a committed projection must never fail because Redis is down
            log.warning("live notices: %s", error)
            return False
        return True
