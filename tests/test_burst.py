"""relay_cli.burst leans on websockets' internals: these tests fail loudly when a release changes them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from relay_cli.burst import BurstClientConnection, BurstServerConnection

FRAMES = [f'{{"n":{n}}}'.encode() for n in range(50)]


def count_writes(conn: BurstServerConnection | BurstClientConnection) -> list[int]:
    """Record the size of each transport write the connection makes from now on."""
    sizes: list[int] = []
    write: Callable[[bytes | bytearray | memoryview], None] = conn.transport.write

    def counted(data: bytes | bytearray | memoryview) -> None:
        sizes.append(len(data))
        write(data)

    conn.transport.write = counted  # type: ignore[method-assign]
    return sizes


def test_a_server_burst_is_one_write_and_arrives_whole_and_in_order() -> None:
    async def scenario() -> tuple[list[str], list[int]]:
        writes: list[int] = []

        async def handler(ws: ServerConnection) -> None:
            assert isinstance(ws, BurstServerConnection)
            sizes = count_writes(ws)
            await ws.send_texts(FRAMES)
            writes.extend(sizes)
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, create_connection=BurstServerConnection) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as client:
                got = [str(await client.recv()) for _ in FRAMES]
        return got, writes

    got, writes = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert got == [f.decode() for f in FRAMES]
    assert len(writes) == 1


def test_a_client_burst_written_at_once_is_one_write_and_arrives_whole_and_in_order() -> None:
    async def scenario() -> tuple[list[str], list[int]]:
        got: list[str] = []
        done = asyncio.Event()

        async def handler(ws: ServerConnection) -> None:
            async for message in ws:
                got.append(str(message))
                if len(got) == len(FRAMES):
                    done.set()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}", create_connection=BurstClientConnection) as client:
                assert isinstance(client, BurstClientConnection)
                writes = count_writes(client)
                client.write_texts(FRAMES)
                await asyncio.wait_for(done.wait(), 5)
                before_close = list(writes)
        return got, before_close

    got, writes = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert got == [f.decode() for f in FRAMES]
    assert len(writes) == 1


def test_writing_to_a_closed_connection_writes_nothing_and_does_not_raise() -> None:
    async def scenario() -> list[int]:
        async def handler(ws: ServerConnection) -> None:
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            client = await connect(f"ws://127.0.0.1:{port}", create_connection=BurstClientConnection)
            assert isinstance(client, BurstClientConnection)
            await client.close()
            writes = count_writes(client)
            client.write_texts(FRAMES)
        return writes

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == []
