"""A small asyncio HTTP/1.1 client for POSTing OTLP batches: one kept-alive connection, TLS
through :mod:`ssl`, timeouts that cancel cleanly. Only what the OTLP sink needs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from emp_tui.redact import redact_url


class HttpError(OSError):
    """The connection failed or the server's answer was not HTTP (always worth a retry)."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # names lowercased
    body: bytes


_MAX_BODY = 4 << 20


class HttpClient:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {redact_url(url)!r}")
        self.url = url
        # Credentials in the URL (https://user:password@host/) are sent as Basic auth.
        self.auth: str | None = None
        if parts.username is not None or parts.password is not None:
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            self.auth = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.tls = ssl.create_default_context() if parts.scheme == "https" else None
        default_port = 443 if parts.scheme == "https" else 80
        self.host_header = self.host if self.port == default_port else f"{self.host}:{self.port}"
        if ":" in self.host and not self.host_header.startswith("["):
            self.host_header = f"[{self.host}]" + (
                "" if self.port == default_port else f":{self.port}"
            )
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(
        self, body: bytes, headers: dict[str, str], *, timeout: float | None = None
    ) -> Response:
        """POST ``body``; raises HttpError (or TimeoutError) when no HTTP answer came."""
        limit = self.timeout if timeout is None else min(timeout, self.timeout)
        try:
            return await asyncio.wait_for(self._post(body, headers), limit)
        except TimeoutError:
            await self.close()
            raise TimeoutError(f"no answer from {self.host_header} in {limit:g} s") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.close()
            if isinstance(exc, HttpError):
                raise
            raise HttpError(f"{self.host_header}: {exc or type(exc).__name__}") from exc

    async def _post(self, body: bytes, headers: dict[str, str]) -> Response:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.tls
            )
        reader, writer = self._reader, self._writer
        assert reader is not None
        lines = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {self.host_header}",
            f"Content-Length: {len(body)}",
            "Connection: keep-alive",
            "User-Agent: emp-collector",
        ]
        if self.auth is not None and not any(n.lower() == "authorization" for n in headers):
            lines.append(f"Authorization: {self.auth}")
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

        status_line = await reader.readline()
        if not status_line:
            raise HttpError(f"{self.host_header} closed the connection")
        parts = status_line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise HttpError(f"{self.host_header} answered {status_line[:60]!r}, not HTTP")
        status = int(parts[1])
        response_headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            response_headers[name.strip().lower()] = value.strip()

        if response_headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size_line = await reader.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            data = b"".join(chunks)
        elif "content-length" in response_headers:
            data = await reader.readexactly(int(response_headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            data = b""
        else:
            data = await reader.read(_MAX_BODY)
            response_headers["connection"] = "close"
        if response_headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, response_headers, data)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            # The connection is gone either way; waiting is only politeness.
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
