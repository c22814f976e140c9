"""Publishing change notices after a projection commit."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from broadcaster import Broadcast

from app.live.backend import CATCH_UP
from app.live.notices import ChangeNotice
from app.settings import Settings

log = logging.getLogger(__name__)

# Topics whose notices were lost are remembered to tell their subscribers to catch up; past this
# many, the rest rely on the subscribers' own reconnect (a long outage drops their connection too).
_MAX_MISSED_TOPICS = 10_000


class Notifier:
    """Publish change notices through broadcaster; a failure is logged, never raised."""

    def __init__(self, broadcast: Broadcast, settings: Settings) -> None:
        self._broadcast = broadcast
        self._settings = settings
        self._missed: set[str] = set()

    async def publish(self, notices: Sequence[ChangeNotice]) -> None:
        """Publish each notice to its topic's channel, in the order read.changes replays them."""
        if self._missed and not await self._announce_catch_up():
            self._remember(notices)
            return
        ordered = sorted(notices, key=lambda notice: (notice.position, notice.entity_id))
        for index, notice in enumerate(ordered):
            if not await self._send(notice.topic, notice.to_json()):
                self._remember(ordered[index:])
                return

    async def _announce_catch_up(self) -> bool:
        # Subscribers elsewhere never saw the lost notices: they must re-read read.changes.
        for topic in sorted(self._missed):
            if not await self._send(topic, CATCH_UP):
                return False
            self._missed.discard(topic)
        return True

    async def _send(self, topic: str, message: str) -> bool:
        try:
            await self._broadcast.publish(self._settings.changes_channel(topic), message)
        except Exception as error:  # a committed projection must never fail because Redis is down
            log.warning("live notices: cannot publish to topic %s: %s", topic, error)
            return False
        return True

    def _remember(self, notices: Sequence[ChangeNotice]) -> None:
        for notice in notices:
            if len(self._missed) >= _MAX_MISSED_TOPICS:
                return
            self._missed.add(notice.topic)
