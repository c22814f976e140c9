"""A map that holds at most `size` entries, forgetting the least recently used first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, KeysView
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """The `size` most recently used entries (size 0: none); a negative size is refused."""

    def __init__(self, size: int, what: str = "a cache") -> None:
        if size < 0:
            raise ValueError(f"{what} cannot have a negative size")
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> KeysView[K]:
        return self._entries.keys()

    def get(self, key: K) -> V | None:
        """Return the entry of `key`, now the most recently used, or None."""
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        """Keep `value` for `key`, dropping the least recently used entry past the size."""
        if self.size == 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)
