"""The bench's HTTP/1.1 client: the bytes it sends are httpx's, it reads an answer however it is
framed, keeps the connection while the server does, and names a fault as httpx did. In memory:
the "server" is a writer that answers each request into the connection's reader."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from bench import http1

URL = "http://127.0.0.1:8001/v1/reports"
OWN = (("X-API-Key", "fq_test"), ("Content-Type", "application/json"))
OK = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


def test_the_request_is_the_one_httpx_sends() -> None:
    body = '{"text": "邻里纠纷"}'.encode()
    with httpx.Client() as client:
        req = client.build_request("POST", URL, content=body, headers=dict(OWN))
    want = b"POST /v1/reports HTTP/1.1\r\n"
    want += b"".join(k + b": " + v + b"\r\n" for k, v in req.headers.raw) + b"\r\n"
    head = http1.request_head("POST", URL, http1.httpx_default_headers() + OWN, len(body))
    assert head == want


async def answer(data: bytes) -> tuple[http1.Response, bool]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await http1.read_response(reader)


async def test_answers_by_length_by_chunks_and_to_the_end() -> None:
    r, keep = await answer(OK)
    assert (r.status_code, r.headers["content-type"], keep) == (202, "application/json", True)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    assert (await answer(chunked))[0].status_code == 200
    r, keep = await answer(b"HTTP/1.1 503 Busy\r\nRetry-After: 2\r\nConnection: close\r\n\r\n")
    assert (r.status_code, r.headers["retry-after"], keep) == (503, "2", False)
    r, keep = await answer(b"HTTP/1.0 200 OK\r\n\r\n{}")
    assert (r.status_code, keep) == (200, False)


@pytest.mark.parametrize(
    "data",
    [b"", b"HTTP/1.1 202 Accepted\r\ncontent-length: 9\r\n\r\n{}", b"SSH-2.0-OpenSSH\r\n\r\n"],
)
async def test_no_complete_answer_is_a_remote_protocol_error(data: bytes) -> None:
    with pytest.raises(http1.RemoteProtocolError):
        await answer(data)


class Server:
    """Answers each request written to a connection with the next of `answers`."""

    def __init__(self, answers: list[bytes | Callable[[asyncio.StreamReader], None]]) -> None:
        self.answers, self.requests, self.opened = answers, list[bytes](), 0

    async def open(self, host: str, port: int) -> tuple[asyncio.StreamReader, Writer]:
        self.opened += 1
        reader = asyncio.StreamReader()
        return reader, Writer(self, reader)


class Writer:
    def __init__(self, server: Server, reader: asyncio.StreamReader) -> None:
        self.server, self.reader, self.closed = server, reader, False

    def write(self, data: bytes) -> None:
        self.server.requests.append(data)
        a = self.server.answers.pop(0)
        if callable(a):
            a(self.reader)
        else:
            self.reader.feed_data(a)

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def test_one_connection_is_kept_while_the_server_keeps_it() -> None:
    server = Server([OK, OK, b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n"])
    conn = http1.Connection(URL, http1.httpx_default_headers(), opener=server.open)  # type: ignore[arg-type]
    codes = [(await conn.post(b"{}", OWN)).status_code for _ in range(3)]
    assert codes == [202, 202, 201] and server.opened == 1
    assert all(r.endswith(b"Content-Length: 2\r\n\r\n{}") for r in server.requests)


async def test_a_connection_the_server_closed_is_opened_again() -> None:
    def close_after_answer(reader: asyncio.StreamReader) -> None:
        reader.feed_data(OK)
        reader.feed_eof()  # keep-alive timeout: the server hung up while the client was idle

    server = Server([close_after_answer, OK])
    conn = http1.Connection(URL, http1.httpx_default_headers(), opener=server.open)  # type: ignore[arg-type]
    assert (await conn.post(b"{}", OWN)).status_code == 202
    assert (await conn.post(b"{}", OWN)).status_code == 202
    assert server.opened == 2


async def test_a_hang_up_instead_of_an_answer_is_a_transport_error_and_the_next_reconnects() -> (
    None
):
    server = Server([lambda reader: reader.feed_eof(), OK])
    conn = http1.Connection(URL, http1.httpx_default_headers(), opener=server.open)  # type: ignore[arg-type]
    with pytest.raises(http1.TransportError) as err:
        await conn.post(b"{}", OWN)
    assert type(err.value).__name__ == "RemoteProtocolError"
    assert (await conn.post(b"{}", OWN)).status_code == 202 and server.opened == 2


async def test_no_answer_in_time_is_a_read_timeout() -> None:
    server = Server([lambda reader: None])
    conn = http1.Connection(
        URL,
        http1.httpx_default_headers(),
        timeout_s=0.05,
        opener=server.open,  # type: ignore[arg-type]
    )
    with pytest.raises(http1.ReadTimeout):
        await conn.post(b"{}", OWN)


async def test_a_refused_connection_is_a_connect_error() -> None:
    async def refuse(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        raise ConnectionRefusedError(111, "Connection refused")

    conn = http1.Connection(URL, http1.httpx_default_headers(), opener=refuse)
    with pytest.raises(http1.ConnectError):
        await conn.post(b"{}", OWN)
