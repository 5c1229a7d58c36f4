"""The transparent proxy over real loopback sockets: what goes in one side comes out the other, unchanged.

The upstream is the emulator where a RELAY is needed, and otherwise a small websockets server of the test's own
that records what it received and does exactly what the test needs (echo, close with a code, drop, send a frame no
RELAY would). Nothing waits by sleeping: every wait is for an event, under one generous outer timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import orjson
import pytest
from tls import server_context
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close

from relay_cli.burst import BurstServerConnection
from relay_cli.emulator import Emulator
from relay_cli.protocol import APP_TO_RELAY, MAX_FRAME, RELAY_TO_APP, Kind
from relay_cli.proxy import PROXY_MAX_SIZE, Link, Proxy

T = TypeVar("T")
Message = str | bytes


def run(main: Callable[[], Coroutine[Any, Any, T]], timeout: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), timeout)

    return asyncio.run(bounded())


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A closing or dropping peer is a normal end: nothing may be logged as an error, let alone a traceback."""
    caplog.set_level(logging.WARNING)
    yield
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not problems, [f"{r.name}: {r.getMessage()}" for r in problems]


class Frames:
    """What the proxy reported: every frame (on_frame) and every link event (on_link)."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, float, int, bytes, bool]] = []
        self.links: list[Link] = []
        self.changed = asyncio.Event()

    def on_frame(self, direction: str, at: float, connection: int, data: bytes, text: bool) -> None:
        self.frames.append((direction, at, connection, data, text))

    def on_link(self, link: Link) -> None:
        self.links.append(link)
        self.changed.set()

    def data(self, direction: str, connection: int | None = None) -> list[Message]:
        """The frames one way, as the peers see them: text as str, binary as bytes."""
        return [
            d.decode() if text else d
            for way, _, conn, d, text in self.frames
            if way == direction and connection in (None, conn)
        ]

    async def link(self, what: str, connection: int = 1) -> Link:
        """The first link event ``what`` of ``connection``, once it happened."""
        while True:
            for link in self.links:
                if link.what == what and link.connection == connection:
                    return link
            self.changed.clear()
            await self.changed.wait()


class Peer:
    """A small upstream: records each connection's messages and how it ended; echoes unless told otherwise."""

    def __init__(self, script: Callable[[ServerConnection], Awaitable[None]] | None = None) -> None:
        self.script = script
        self.conns: list[ServerConnection] = []
        self.got: list[list[Message]] = []
        self.ends: list[ConnectionClosed] = []
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self.received = asyncio.Event()

    async def wait_for(self, ready: Callable[[], bool]) -> None:
        """Until ``ready()``, re-checked whenever a connection opens, ends or receives a message."""
        while not ready():
            for event in (self.connected, self.ended, self.received):
                event.clear()
            waiters = [asyncio.ensure_future(e.wait()) for e in (self.connected, self.ended, self.received)]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def __call__(self, ws: ServerConnection) -> None:
        self.conns.append(ws)
        got: list[Message] = []
        self.got.append(got)
        self.connected.set()
        try:
            if self.script is not None:
                await self.script(ws)
            while True:
                message = await ws.recv()
                got.append(message)
                self.received.set()
                if self.script is None:
                    await ws.send(message)
        except ConnectionClosed as exc:
            self.ends.append(exc)
            self.ended.set()


@contextlib.asynccontextmanager
async def listening(peer: Peer, **kwargs: Any) -> AsyncIterator[str]:
    """``peer`` as a websockets server on a free loopback port; yields its ws:// URL."""
    async with serve(peer, "127.0.0.1", 0, ping_interval=None, max_size=None, **kwargs) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


@contextlib.asynccontextmanager
async def proxied(peer: Peer, frames: Frames, **kwargs: Any) -> AsyncIterator[Proxy]:
    async with (
        listening(peer) as upstream,
        Proxy(upstream, port=0, on_frame=frames.on_frame, on_link=frames.on_link, **kwargs) as proxy,
    ):
        yield proxy


def dial(url: str, **kwargs: Any) -> connect:
    return connect(url, ping_interval=None, max_size=None, **kwargs)


async def send_all(ws: ClientConnection, messages: list[str]) -> None:
    for message in messages:
        await ws.send(message)


async def recv_all(ws: ClientConnection, n: int) -> list[Message]:
    return [await ws.recv() for _ in range(n)]


ODD = [
    '{ "b" : 1,\t"a":[ 2 , 3 ]\n}',
    '{"z":"last","a":"first","m":{"y":1,"x":2}}',
    '{"text":"caf\u00e9 \u2603 \U0001f4de","escaped":"caf\\u00e9"}',
    '{"n":1.50,"e":1E3,"neg":-0}   ',
    "{}",
]


def test_frames_pass_byte_for_byte_both_ways_whitespace_key_order_and_non_ascii_kept() -> None:
    async def main() -> None:
        frames, peer = Frames(), Peer()
        async with proxied(peer, frames) as proxy, dial(proxy.url) as app:
            for text in ODD:
                await app.send(text)
            assert await recv_all(app, len(ODD)) == ODD
        assert peer.got == [ODD]
        assert frames.data(APP_TO_RELAY) == ODD and frames.data(RELAY_TO_APP) == ODD
        assert [f[3] for f in frames.frames if f[0] == APP_TO_RELAY] == [t.encode() for t in ODD]

    run(main)


def test_a_burst_of_thousands_of_frames_each_way_arrives_in_order_binary_ones_still_binary() -> None:
    n = 5000
    down: list[Message] = [
        orjson.dumps({"seq": i, "pad": "x" * (i % 300)}).decode() if i % 97 else b"binary %d" % i for i in range(n)
    ]
    up = [orjson.dumps({"up": i}).decode() for i in range(n)]

    async def burst(ws: ServerConnection) -> None:
        assert isinstance(ws, BurstServerConnection)
        texts: list[bytes] = []
        for message in down:
            if isinstance(message, str):
                texts.append(message.encode())
                continue
            await ws.send_texts(texts)  # many frames in one write: the proxy finds them waiting together
            texts.clear()
            await ws.send(message)
        await ws.send_texts(texts)

    async def main() -> None:
        frames, peer = Frames(), Peer(burst)
        async with (
            listening(peer, create_connection=BurstServerConnection) as upstream,
            Proxy(upstream, port=0, on_frame=frames.on_frame) as proxy,
            dial(proxy.url) as app,
        ):
            sending = asyncio.create_task(send_all(app, up))
            assert await recv_all(app, n) == down
            await sending
            await peer.wait_for(lambda: len(peer.got[0]) == n)
        assert peer.got[0] == up
        assert frames.data(RELAY_TO_APP) == down and frames.data(APP_TO_RELAY) == up
        # Frames found waiting together are forwarded together, told to on_frame with one receive time.
        assert len({at for way, at, *_ in frames.frames if way == RELAY_TO_APP}) < n

    run(main)


def test_on_frame_is_told_of_each_frame_with_its_direction_connection_and_time_before_it_is_forwarded() -> None:
    told_before: list[int] = []  # how many app>relay frames on_frame had seen when the upstream got each one

    async def watch(ws: ServerConnection) -> None:
        for i in range(3):
            await ws.recv()
            told_before.append(sum(1 for f in frames.frames if f[0] == APP_TO_RELAY))
            await ws.send(f'{{"reply":{i}}}')

    frames = Frames()

    async def main() -> None:
        peer = Peer(watch)
        async with proxied(peer, frames) as proxy, dial(proxy.url) as app:
            start = time.time()
            for i in range(3):
                await app.send(f'{{"ask":{i}}}')
                await app.recv()
            end = time.time()
        assert told_before == [1, 2, 3]
        assert [(d, c, data, text) for d, _, c, data, text in frames.frames] == [
            item
            for i in range(3)
            for item in (
                (APP_TO_RELAY, 1, f'{{"ask":{i}}}'.encode(), True),
                (RELAY_TO_APP, 1, f'{{"reply":{i}}}'.encode(), True),
            )
        ]
        assert all(start <= at <= end for _, at, _, _, _ in frames.frames)

    run(main)


def test_a_close_code_and_reason_from_the_app_reach_relay_and_the_pair_ends_by_the_app() -> None:
    async def main() -> None:
        frames, peer = Frames(), Peer()
        async with proxied(peer, frames) as proxy:
            async with dial(proxy.url) as app:
                await app.send("{}")
                await app.recv()
                await app.close(4000, "app done")
            await peer.ended.wait()
            link = await frames.link("closed")
        assert peer.ends[0].rcvd == Close(4000, "app done")
        assert (link.detail, link.code, link.reason) == ("by the app", 4000, "app done")

    run(main)


def test_a_close_code_and_reason_from_relay_reach_the_app_and_the_pair_ends_by_relay() -> None:
    async def close_soon(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(4001, "relay says go")

    async def main() -> ConnectionClosed:
        frames, peer = Frames(), Peer(close_soon)
        async with proxied(peer, frames) as proxy, dial(proxy.url) as app:
            await app.send("{}")
            with pytest.raises(ConnectionClosed) as closed:
                await app.recv()
            link = await frames.link("closed")
            assert (link.detail, link.code, link.reason) == ("by RELAY", 4001, "relay says go")
            return closed.value

    closed = run(main)
    assert closed.rcvd == Close(4001, "relay says go")


def test_a_close_without_a_status_passes_as_one_both_ways() -> None:
    async def empty_close(ws: ServerConnection | ClientConnection) -> None:
        async with ws.send_context():  # websockets' public close() always sends a code
            ws.protocol.send_close()

    async def main() -> None:
        frames, peer = Frames(), Peer()
        async with proxied(peer, frames) as proxy:
            async with dial(proxy.url) as app:
                await empty_close(app)
            await peer.ended.wait()
            assert peer.ends[0].rcvd is not None and peer.ends[0].rcvd.code == 1005
            assert (await frames.link("closed")).code == 1005

            relay_closes = Peer(empty_close)
            async with listening(relay_closes) as upstream, Proxy(upstream, port=0) as second, dial(second.url) as app:
                with pytest.raises(ConnectionClosed) as closed:
                    await app.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1005

    run(main)


def test_an_app_that_drops_has_its_relay_connection_dropped_too() -> None:
    async def main() -> None:
        frames, peer = Frames(), Peer()
        async with proxied(peer, frames) as proxy:
            app = await dial(proxy.url)
            await app.send('{"last":true}')
            await app.recv()
            app.transport.abort()
            await peer.ended.wait()
            link = await frames.link("closed")
        assert peer.got == [['{"last":true}']]
        assert peer.ends[0].rcvd is None and peer.ends[0].sent is None  # no close frame either way: a drop
        assert (link.detail, link.code) == ("dropped by the app", None)

    run(main)


def test_an_upstream_that_drops_drops_the_app_after_the_frames_it_sent_before() -> None:
    async def send_and_drop(ws: ServerConnection) -> None:
        await ws.send('{"before":"the drop"}')
        ws.transport.abort()

    async def main() -> tuple[Message, ConnectionClosed]:
        frames, peer = Frames(), Peer(send_and_drop)
        async with proxied(peer, frames) as proxy, dial(proxy.url) as app:
            first = await app.recv()
            with pytest.raises(ConnectionClosed) as closed:
                await app.recv()
            link = await frames.link("closed")
            assert (link.detail, link.code) == ("dropped by RELAY", None)
            return first, closed.value

    first, closed = run(main)
    assert first == '{"before":"the drop"}'
    assert closed.rcvd is None and closed.sent is None  # no close frame: what the app's websockets calls 1006


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_upstream_that_refuses_fails_the_apps_handshake_with_502_and_a_refused_link() -> None:
    port = unused_port()

    async def main() -> tuple[InvalidStatus, Link]:
        frames = Frames()
        upstream = f"ws://127.0.0.1:{port}"
        async with Proxy(upstream, port=0, on_link=frames.on_link) as proxy:
            with pytest.raises(InvalidStatus) as failed:
                await dial(proxy.url)
            return failed.value, await frames.link("refused")

    failed, link = run(main)
    body = failed.response.body.decode()
    assert failed.response.status_code == http.HTTPStatus.BAD_GATEWAY
    assert link.detail == f"connection refused (ws://127.0.0.1:{port}/)"
    assert body == f"relay proxy: cannot reach RELAY: {link.detail}\n"
    assert link.peer.startswith("127.0.0.1:") and link.code is None


def test_an_upstream_answering_http_or_untrusted_tls_is_refused_naming_why() -> None:
    async def forbid(connection: ServerConnection, request: Any) -> Any:
        return connection.respond(http.HTTPStatus.FORBIDDEN, "no\n")

    async def main() -> list[str]:
        frames = Frames()
        async with serve(Peer(), "127.0.0.1", 0, process_request=forbid) as forbidding:
            url = f"ws://127.0.0.1:{forbidding.sockets[0].getsockname()[1]}"
            async with Proxy(url, port=0, on_link=frames.on_link) as proxy:
                with pytest.raises(InvalidStatus):
                    await dial(proxy.url)
        async with serve(Peer(), "127.0.0.1", 0, ssl=server_context()) as tls:
            url = f"wss://127.0.0.1:{tls.sockets[0].getsockname()[1]}"
            trust_nothing = ssl.create_default_context()  # not the test certificate
            async with Proxy(url, port=0, on_link=frames.on_link, upstream_ssl=trust_nothing) as proxy:
                with pytest.raises(InvalidStatus):
                    await dial(proxy.url)
        return [link.detail for link in frames.links]

    forbidden, untrusted = run(main)
    assert forbidden.startswith("it answered HTTP 403 (ws://127.0.0.1:")
    assert untrusted.startswith("its TLS certificate is not trusted (")


def test_two_apps_at_once_get_separate_pairs_numbered_1_and_2() -> None:
    async def main() -> None:
        frames, peer = Frames(), Peer()
        async with proxied(peer, frames) as proxy, dial(proxy.url) as first, dial(proxy.url) as second:
            await second.send('{"from":"second"}')
            await first.send('{"from":"first"}')
            assert await second.recv() == '{"from":"second"}'
            assert await first.recv() == '{"from":"first"}'
            opened = [await frames.link("open", 1), await frames.link("open", 2)]
        assert len(peer.conns) == 2 and sorted(map(str, peer.got)) == sorted(
            map(str, [['{"from":"first"}'], ['{"from":"second"}']])
        )
        assert frames.data(APP_TO_RELAY, 1) == ['{"from":"first"}'] == frames.data(RELAY_TO_APP, 1)
        assert frames.data(APP_TO_RELAY, 2) == ['{"from":"second"}'] == frames.data(RELAY_TO_APP, 2)
        assert opened[0].peer != opened[1].peer
        assert opened[0].detail == opened[1].detail == proxy.upstream_url("/")

    run(main)


def test_a_frame_over_10_mib_a_non_json_frame_and_invalid_utf8_text_pass_unchanged() -> None:
    big = '{"pad":"' + "x" * (MAX_FRAME + 10) + '"}'
    odd: list[Message] = [big, "not json {", "\x00\x01 control"]
    invalid = b"\xff\xfe not UTF-8"

    async def raw_echo(ws: ServerConnection) -> None:
        message = await ws.recv(decode=False)  # recv() would refuse the invalid UTF-8 the test sends
        got.append(message)
        await ws.send(message, text=True)

    got: list[bytes] = []

    async def main() -> None:
        frames, peer = Frames(), Peer()
        async with proxied(peer, frames) as proxy, dial(proxy.url) as app:
            for message in odd:
                await app.send(message)
            assert await recv_all(app, len(odd)) == odd
        assert peer.got == [odd]
        assert frames.data(APP_TO_RELAY) == odd == frames.data(RELAY_TO_APP)

        frames = Frames()
        async with proxied(Peer(raw_echo), frames) as proxy, dial(proxy.url) as app:
            await app.send(invalid, text=True)
            assert await app.recv(decode=False) == invalid
        assert got == [invalid]
        assert [f[3:] for f in frames.frames] == [(invalid, True), (invalid, True)]

    run(main, 30)


def test_binary_frames_pass_as_binary_and_fragmented_messages_as_one_message_of_their_kind() -> None:
    sent: list[Message | list[str] | list[bytes]] = [
        b"\x00\x01\xff binary",
        '{"then":"text"}',
        ['{"frag', 'mented":', '"text"}'],
        [b"frag", b"mented binary"],
    ]
    whole: list[Message] = [b"\x00\x01\xff binary", '{"then":"text"}', '{"fragmented":"text"}', b"fragmented binary"]

    async def main() -> None:
        frames, peer = Frames(), Peer()
        async with proxied(peer, frames) as proxy, dial(proxy.url) as app:
            for message in sent:
                await app.send(message)
            assert await recv_all(app, len(whole)) == whole
        assert peer.got == [whole]
        kinds = [text for d, _, _, _, text in frames.frames if d == APP_TO_RELAY]
        assert kinds == [False, True, True, False]

    run(main)


def test_a_frame_over_the_proxys_limit_closes_both_sides_with_1009() -> None:
    async def main() -> ConnectionClosed:
        frames, peer = Frames(), Peer()
        async with proxied(peer, frames) as proxy:
            app = await dial(proxy.url)  # not closed again after: asyncio trips on the unsent rest of the frame
            await app.send(b"x" * (PROXY_MAX_SIZE + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await app.recv()
            await peer.ended.wait()
            link = await frames.link("closed")
            assert peer.ends[0].rcvd is not None and peer.ends[0].rcvd.code == 1009
            assert (link.detail, link.code) == ("the app sent a frame over the 40 MiB limit", 1009)
            return closed.value

    closed = run(main, 30)
    assert closed.rcvd is not None and closed.rcvd.code == 1009 and "exceeds limit" in closed.rcvd.reason


def test_the_app_path_query_and_user_agent_reach_the_upstream_and_its_own_path_wins() -> None:
    async def main() -> list[tuple[str, str | None]]:
        peer = Peer()
        async with listening(peer) as upstream:
            async with (
                Proxy(upstream, port=0) as proxy,
                dial(proxy.url + "/api/relay?x=1", user_agent_header="App/1.0"),
            ):
                await peer.connected.wait()
            async with Proxy(upstream + "/fixed", port=0) as proxy, dial(proxy.url + "/other", user_agent_header=None):
                await peer.wait_for(lambda: len(peer.conns) == 2)
        return [(ws.request.path, ws.request.headers.get("User-Agent")) for ws in peer.conns if ws.request]

    assert run(main) == [("/api/relay?x=1", "App/1.0"), ("/fixed", None)]


def test_the_proxy_negotiates_no_compression_with_the_app() -> None:
    async def main() -> str | None:
        frames, peer = Frames(), Peer()
        async with proxied(peer, frames) as proxy, dial(proxy.url, compression="deflate") as app:
            assert app.response is not None
            return app.response.headers.get("Sec-WebSocket-Extensions")

    assert run(main) is None


def test_closing_the_proxy_closes_every_app_and_every_relay_connection() -> None:
    async def main() -> None:
        frames, peer = Frames(), Peer()
        async with listening(peer) as upstream:
            proxy = Proxy(upstream, port=0, on_link=frames.on_link)
            await proxy.start()
            apps = [await dial(proxy.url), await dial(proxy.url)]
            for app in apps:
                await app.send("{}")
                await app.recv()
            await proxy.close()
            for app in apps:
                with pytest.raises(ConnectionClosed) as closed:
                    await app.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            await peer.wait_for(lambda: len(peer.ends) == 2)
        assert [end.rcvd.code if end.rcvd else None for end in peer.ends] == [1001, 1001]
        assert sorted((link.connection, link.detail) for link in frames.links if link.what == "closed") == [
            (1, "by the proxy"),
            (2, "by the proxy"),
        ]

    run(main)


def test_a_plain_http_request_is_answered_by_websockets_and_opens_nothing_upstream() -> None:
    async def main() -> tuple[bytes, list[Link], int]:
        frames, peer = Frames(), Peer()
        async with proxied(peer, frames) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status = await reader.readline()
            writer.close()
        return status, frames.links, len(peer.conns)

    status, links, upstreams = run(main)
    assert status.startswith(b"HTTP/1.1 426") and links == [] and upstreams == 0


def test_an_upstream_that_is_not_a_websocket_url_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match=r"^not a ws:// or wss:// URL: 'http://example.com/x'$"):
        Proxy("http://user:secret@example.com/x?token=abc")


def test_a_relay_session_through_the_proxy_reaches_the_emulator_byte_for_byte() -> None:
    connect_frame = (
        b'{"jsonrpc":"2.0","id":"c-1","method":"signalwire.connect","params":{"version":{"major":2,"minor":0,'
        b'"revision":0},"event_acks":true,"authentication":{"project":"proj","token":"tok  en"}}}'
    )

    async def main() -> None:
        frames = Frames()
        async with Emulator(mode="app", ping_interval=0) as emu:
            heard = asyncio.Event()
            emu.journal.observers.append(lambda direction, *_: heard.set() if direction == APP_TO_RELAY else None)
            async with Proxy(emu.url, port=0, on_frame=frames.on_frame) as proxy, dial(proxy.url) as app:
                await app.send(connect_frame, text=True)
                reply, event = await app.recv(decode=False), await app.recv(decode=False)
                assert orjson.loads(reply)["result"]["protocol"]
                assert orjson.loads(event)["method"] == Kind.EVENT.value  # signalwire.authorization.state
                heard.clear()
                ack = b'{"jsonrpc":"2.0","id":' + orjson.dumps(orjson.loads(event)["id"]) + b',"result":{}}'
                await app.send(ack, text=True)
                await heard.wait()
                records = list(emu.journal.records())
        sent = [(APP_TO_RELAY, connect_frame), (RELAY_TO_APP, reply), (RELAY_TO_APP, event), (APP_TO_RELAY, ack)]
        assert [(r.direction, r.raw) for r in records] == sent
        assert [(d, data) for d, _, _, data, _ in frames.frames] == sent

    run(main)
