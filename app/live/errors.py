"""Why a subscription cannot start: its resume position is older than what read.changes still holds."""

from __future__ import annotations

from app.eventstore.position import Position


class ResumeTooOld(Exception):
    """Changes after `after` may have been purged (they are below the horizon): resuming would leave a gap."""

    def __init__(self, after: Position, horizon: Position) -> None:
        super().__init__(f"cannot resume after {after}: changes up to {horizon} may have been purged")
        self.after = after
        self.horizon = horizon
