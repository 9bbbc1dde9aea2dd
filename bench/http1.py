"""The bench's HTTP client: keep-alive HTTP/1.1 POSTs on asyncio streams, one connection each.

httpx cost the bench ~1 ms of CPU per request, most of it its connection pool checking every
pooled connection for each request: on the two cores the services are measured on. This sends
the same request bytes httpx sent (its default headers, in its order), reads the status line
and headers and the body by Content-Length or chunks, and reuses the connection unless the
server closed it. Transport faults raise `TransportError` subclasses named as httpx's.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

Opener = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class TransportError(Exception):
    """No complete answer: the request may or may not have reached the server."""


class ConnectError(TransportError):
    """The connection could not be opened."""


class WriteError(TransportError):
    """The request could not be written."""


class ReadError(TransportError):
    """The connection failed while reading the answer."""


class RemoteProtocolError(TransportError):
    """The server closed the connection, or answered something that is not HTTP/1.1."""


class ReadTimeout(TransportError):
    """No complete answer within the timeout."""


@dataclass(frozen=True)
class Response:
    """Status and headers (names in lower case) of an answer; the body is read and dropped."""

    status_code: int
    headers: dict[str, str]


@functools.cache
def httpx_default_headers() -> tuple[tuple[str, str], ...]:
    """The headers httpx's client adds to every request (Accept, Accept-Encoding, Connection,
    User-Agent), so that intake parses the same requests as before."""
    import httpx

    with httpx.Client() as client:
        return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in client.headers.raw)


def request_head(
    method: str, url: str, headers: tuple[tuple[str, str], ...], content_length: int
) -> bytes:
    """Request line and headers as httpx writes them: Host first, Content-Length last."""
    u = urlsplit(url)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {u.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    """One answer off the stream; returns it and whether the connection can be used again."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise RemoteProtocolError("server closed the connection without an answer") from exc
    except asyncio.LimitOverrunError as exc:
        raise RemoteProtocolError("answer headers too long") from exc
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise RemoteProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    status = int(parts[1])
    keep = parts[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                await reader.readexactly(size + 2)
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
        elif "content-length" in headers:
            await reader.readexactly(int(headers["content-length"]))
        elif status >= 200 and status not in (204, 304):
            await reader.read()  # to the end of the connection
            keep = False
    except asyncio.IncompleteReadError as exc:
        raise RemoteProtocolError("server closed the connection inside the body") from exc
    except ValueError as exc:
        raise RemoteProtocolError(f"bad body framing: {exc}") from exc
    return Response(status, headers), keep


class Connection:
    """One keep-alive connection to one origin, opened on first use and again after a fault."""

    def __init__(
        self,
        url: str,
        headers: tuple[tuple[str, str], ...],
        timeout_s: float = 60,
        opener: Opener | None = None,
    ) -> None:
        u = urlsplit(url)
        self.url, self.host, self.port = url, u.hostname or "127.0.0.1", u.port or 80
        self.headers, self.timeout_s = headers, timeout_s
        self._open = opener or (lambda h, p: asyncio.open_connection(h, p))
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, headers: tuple[tuple[str, str], ...]) -> Response:
        """POST `body` to the connection's URL with the default headers, then `headers`."""
        head = request_head("POST", self.url, self.headers + headers, len(body))
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(head + body)
        except TimeoutError as exc:
            self.close()
            raise ReadTimeout(f"no answer within {self.timeout_s} s") from exc

    async def _exchange(self, request: bytes) -> Response:
        reader, writer = self._reader, self._writer
        if reader is None or writer is None or reader.at_eof() or writer.is_closing():
            self.close()  # the server closed it while idle (keep-alive timeout): a new one
            try:
                reader, writer = await self._open(self.host, self.port)
            except OSError as exc:
                raise ConnectError(str(exc)) from exc
            self._reader, self._writer = reader, writer
        try:
            writer.write(request)
            await writer.drain()
        except OSError as exc:
            self.close()
            raise WriteError(str(exc)) from exc
        try:
            response, keep = await read_response(reader)
        except OSError as exc:
            self.close()
            raise ReadError(str(exc)) from exc
        except TransportError:
            self.close()
            raise
        if not keep:
            self.close()
        return response

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
