"""An import's file, read on the event loop one chunk at a time and parsed in
a thread: the parsing thread pulls chunks through a :class:`ChunkFeed`,
which holds at most ``capacity`` of them, and yields batches; the loop
writes one batch while the thread parses the next (:func:`read_ahead`).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


class _Stopped(Exception):
    """The reading was stopped: the parsing thread gives up."""


class ChunkFeed:
    """Chunks of an async iterator handed to a thread as an iterator of
    bytes. :meth:`fill` runs on the event loop; the thread's ``next`` blocks
    until a chunk is there. An error of the source is raised in the thread."""

    def __init__(self, capacity: int = 1) -> None:
        self._queue: queue.SimpleQueue[bytes | BaseException | None] = queue.SimpleQueue()
        self._room = asyncio.Semaphore(capacity)
        self._loop = asyncio.get_running_loop()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        item = self._queue.get()
        if item is None or isinstance(item, BaseException):
            self._queue.put(item)  # for any later call: the end stays the end
            if item is None:
                raise StopIteration
            raise item
        self._loop.call_soon_threadsafe(self._room.release)
        return item

    async def fill(self, chunks: AsyncIterator[bytes]) -> None:
        """Hand over the chunks, reading the next one only once fewer than
        ``capacity`` are unread."""
        try:
            while True:
                await self._room.acquire()
                chunk = await anext(chunks, None)
                self._queue.put(chunk)
                if chunk is None:
                    return
        except asyncio.CancelledError:
            self._queue.put(_Stopped())
            raise
        except Exception as exc:  # raised in the thread, where the chunks are read
            self._queue.put(exc)
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()


async def read_ahead(
    chunks: AsyncIterator[bytes], parse: Callable[[Iterator[bytes]], Iterator[T]]
) -> AsyncGenerator[T, None]:
    """What ``parse`` makes of the chunks, each item made in a thread while
    the caller uses the previous one. Closing the generator stops the
    reading (the thread stops at its next chunk)."""
    feed = ChunkFeed()
    filling = asyncio.create_task(feed.fill(chunks))
    items = parse(feed)

    def parse_next() -> asyncio.Future[T | None]:
        return asyncio.ensure_future(asyncio.to_thread(next, items, None))

    upcoming = parse_next()
    try:
        while (item := await upcoming) is not None:
            upcoming = parse_next()
            yield item
    finally:
        upcoming.cancel()
        filling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await filling
