"""A TCP relay for fault tests: ``cut`` (reset and refuse), ``freeze`` (drop silently)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    """``127.0.0.1:port`` relayed to ``target_host:target_port``. ``cut()``: every relayed
    connection is reset and the port refuses new ones (the listener is closed);
    ``restore()``: it listens again on the same port. ``freeze()``: a silent partition,
    packets lost rather than refused: nothing is relayed any more, in either direction, and
    new connections are accepted but never reach the target; ``thaw()``: what was held is
    relayed and everything flows again (a partition short enough for TCP to ride out)."""

    target_host: str
    target_port: int
    port: int = 0
    accepted: int = 0
    cuts: int = 0
    reset: int = 0  # relayed connections reset by cuts
    _server: asyncio.Server | None = None
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)
    _conns: set[asyncio.StreamWriter] = field(default_factory=set)
    _clients: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for w in list(self._conns):
            with contextlib.suppress(Exception):
                w.transport.abort()  # RST, not a polite FIN: the far end is gone
        self._conns.clear()
        self.reset += len(self._clients)
        self._clients.clear()
        if server is not None:
            await server.wait_closed()
        self.cuts += 1

    async def restore(self) -> None:
        await self.start()

    async def freeze(self) -> None:
        self._flowing.clear()

    async def thaw(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        await self.cut()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        await self._flowing.wait()  # frozen: the SYN got through, nothing else does
        try:
            up_r, up_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        self._conns |= {writer, up_w}
        self._clients.add(writer)
        for src, dst in ((reader, up_w), (up_r, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._conns.discard(dst)
            self._clients.discard(dst)
            with contextlib.suppress(Exception):
                dst.transport.abort()
