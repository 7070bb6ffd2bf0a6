"""A small in-process cache: entries that expire, at most ``max_entries`` of
them, the least recently used evicted first.

Not thread-safe and not shared between processes: each api process keeps its
own (api/principals.py), touched only from its event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringLRU(Generic[K, V]):
    """Values by key, each until its own expiry time (by ``clock``)."""

    def __init__(self, *, max_entries: int, clock: Callable[[], float]) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is held, fresh or expired but not yet dropped."""
        return key in self._entries

    def get(self, key: K) -> V | None:
        """The value while unexpired (it becomes the most recently used);
        None, and the entry dropped, from its expiry on."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, *, expires: float) -> None:
        """Keep ``value`` until ``expires`` (a time of ``clock``), evicting
        the least recently used entries beyond ``max_entries``."""
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        """Drop ``key`` if present."""
        self._entries.pop(key, None)

    def drop_where(self, predicate: Callable[[V], bool]) -> None:
        """Drop every entry whose value matches ``predicate``, expired or not."""
        for key in [k for k, (_, value) in self._entries.items() if predicate(value)]:
            del self._entries[key]
