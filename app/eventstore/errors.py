"""Errors the event store raises; database exceptions never leave the adapter."""


class EventStoreError(Exception):
    """Base of the event store's errors."""


class ConcurrencyError(EventStoreError):
    """The stream moved past the version the writer expected."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(f"stream {stream_id} is no longer at version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


class TargetChanged(ConcurrencyError):
    """A stream the writer only read (a book's category) changed before the write: decide again.

    Re-deciding is always what the caller meant here: any expectation it pinned is about the stream it
    writes, and the next attempt checks that again. `held`: every stream the write checked, the changed
    one among them (others may have moved too: the check names one).
    """

    def __init__(self, stream_id: str, expected_version: int, held: tuple[str, ...] = ()) -> None:
        super().__init__(stream_id, expected_version)
        self.held = held or (stream_id,)
