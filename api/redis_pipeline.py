"""Redis commands of many requests at once over one connection: the rate
limiter's Lua script (:class:`PipelinedScript`) and the job sender's LPUSH
(:meth:`PipelinedConnection.lpush`).

The rate limiter asks Redis once per request. Through redis-py each call
takes a pooled connection, packs the command through its generic machinery,
writes it (a system call) and parses the reply, a large share of a small
request's cost. Here the calls of one event-loop turn go out in one write,
Redis answers them in order (it always does, on one connection), and one
read hands every reply to its caller: exact, each call still one atomic
script run, at a fraction of the cost.

redis-py still opens the connection (REDIS_URL's TLS, credentials and
database, as everywhere else); its streams are then used directly.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

Reply = int | bytes | list["Reply"] | None
_INCOMPLETE = object()


def encode(*parts: bytes) -> bytes:
    """A command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def parse(buffer: bytes, start: int) -> tuple[object, int]:
    """One reply from ``buffer`` at ``start`` and where the next begins;
    ``_INCOMPLETE`` when it has not all arrived. An error reply is returned
    as a :class:`ResponseError` (``NoScriptError`` for NOSCRIPT)."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return _INCOMPLETE, start
    kind, line, after = buffer[start : start + 1], buffer[start + 1 : end], end + 2
    if kind in (b":", b"("):  # RESP3 big numbers too
        return int(line), after
    if kind == b"+":
        return line, after
    if kind == b"-":
        message = line.decode("utf-8", "replace")
        error = NoScriptError if message.startswith("NOSCRIPT") else ResponseError
        return error(message), after
    if kind in (b"$", b"="):
        length = int(line)
        if length < 0:
            return None, after
        if len(buffer) < after + length + 2:
            return _INCOMPLETE, start
        return buffer[after : after + length], after + length + 2
    if kind in (b"*", b"~", b">"):
        count = int(line)
        items: list[object] = []
        position = after
        for _ in range(max(count, 0)):
            item, position = parse(buffer, position)
            if item is _INCOMPLETE:
                return _INCOMPLETE, start
            items.append(item)
        return (items if count >= 0 else None), position
    if kind == b"_":
        return None, after
    raise RedisConnectionError(f"unexpected reply from Redis: {buffer[start:end]!r}")


class PipelinedConnection:
    """One connection that commands of concurrent callers share: those made
    while others wait are written together, their replies read in order. A
    broken connection fails every call waiting on it; the next call opens a
    new one."""

    def __init__(self, url: str, *, timeout: float) -> None:
        # No retry here: each caller decides what a failure means.
        self.pool = ConnectionPool.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), retries=0),
        )
        self._connection: AbstractConnection | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._waiting: deque[asyncio.Future[object]] = deque()
        self._outbox: list[bytes] = []

    async def lpush(self, name: str, *values: bytes) -> Reply:
        """LPUSH ``values`` onto list ``name``, for messages a duplicate of
        which is harmless (a job message only wakes a worker): a broken
        connection (Redis restarted) is replaced and the push sent once
        more. The caller bounds the wait, and calls :meth:`abort` when it
        gives up."""
        command = encode(b"LPUSH", name.encode(), *values)
        try:
            reply = await self._send(command)
        except RedisConnectionError:
            reply = await self._send(command)
        if isinstance(reply, ResponseError):
            raise reply
        return reply  # type: ignore[return-value]

    async def _send(self, command: bytes) -> object:
        if self._connection is None:
            await self._connect()
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if not self._outbox:
            # Written once this turn of the event loop has queued its calls.
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(command)
        self._waiting.append(future)
        return await future

    async def _connect(self) -> None:
        # Concurrent callers wait for the one connection being opened.
        if self._connecting is not None:
            await asyncio.shield(self._connecting)
            return
        self._connecting = asyncio.get_running_loop().create_future()
        try:
            connection = self.pool.make_connection()  # type: ignore[no-untyped-call]
            await connection.connect()
            self._connection = connection
            self._reader_task = asyncio.create_task(self._read(connection))
            self._connecting.set_result(None)
        except asyncio.CancelledError:
            self._connecting.cancel()
            raise
        except Exception as exc:
            self._connecting.set_exception(exc)
            self._connecting.exception()  # retrieved: the waiters re-raise it
            raise
        finally:
            self._connecting = None

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        connection = self._connection
        if connection is None or connection._writer is None:
            self._fail(RedisConnectionError("Redis connection closed"))
            return
        connection._writer.write(b"".join(outbox))

    async def _read(self, connection: AbstractConnection) -> None:
        reader = connection._reader
        assert reader is not None
        buffer = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    raise RedisConnectionError("Redis closed the connection")
                buffer += data
                position = 0
                while position < len(buffer):
                    reply, position = parse(buffer, position)
                    if reply is _INCOMPLETE:
                        break
                    future = self._waiting.popleft()
                    if not future.done():  # its caller may have given up
                        future.set_result(reply)
                buffer = buffer[position:]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc if isinstance(exc, RedisConnectionError) else RedisConnectionError(exc)
            if self._connection is connection:
                self._fail(error)

    def _fail(self, error: Exception) -> None:
        """Drop the connection; every call waiting on it fails with ``error``."""
        connection, self._connection = self._connection, None
        if connection is not None and connection._writer is not None:
            connection._writer.transport.abort()  # nothing more is sent on it
            connection._close()  # type: ignore[no-untyped-call]
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
        self._reader_task = None
        waiting, self._waiting = self._waiting, deque()
        self._outbox = []
        for future in waiting:
            if not future.done():
                future.set_exception(error)

    def abort(self) -> None:
        """Give up on the connection after a call timed out: Redis, or the
        way to it, may hang; the next call opens a fresh one."""
        self._fail(RedisConnectionError("Redis timed out"))

    async def aclose(self) -> None:
        """Close the connection."""
        task = self._reader_task
        self._fail(RedisConnectionError("closed"))
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        await self.pool.disconnect()


class PipelinedScript(PipelinedConnection):
    """``await script(keys, args)`` runs ``source`` (EVALSHA, loaded with
    EVAL when Redis does not know it) and returns its reply; no retry: the
    limiter lets a request through when Redis fails and leaves it alone for
    a while."""

    def __init__(self, url: str, source: str, *, timeout: float) -> None:
        super().__init__(url, timeout=timeout)
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source, usedforsecurity=False).hexdigest().encode()

    async def __call__(self, keys: Sequence[str], args: Sequence[int]) -> Reply:
        """The script's reply for these keys and arguments."""
        parts = [str(part).encode() for part in (*keys, *args)]
        reply = await self._send(encode(b"EVALSHA", self.sha, b"%d" % len(keys), *parts))
        if isinstance(reply, NoScriptError):  # a restarted or flushed Redis
            reply = await self._send(encode(b"EVAL", self.source, b"%d" % len(keys), *parts))
        if isinstance(reply, ResponseError):
            raise reply
        return reply  # type: ignore[return-value]
