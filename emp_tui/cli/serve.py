"""`emp-tui serve`: the app in a browser, through textual-serve.

Each browser tab that opens the page gets an app process of its own: the same `emp-tui`
command line, run with this Python and the app options given to `serve` (``--redis-url``,
``--stream``, ``--file``, ``--job``, ``--filter``), so it builds the app through the same
factory as the terminal app. textual-serve has no authentication: anyone who can reach the port
can use the app, and through it read the stream, so it binds to 127.0.0.1 unless told
otherwise, and says so loudly when told otherwise.

The address is checked before the server starts (a name that does not resolve, a port in use,
an address that is not this machine's): one line and exit code 2. ``--port 0`` takes a free
port; the URL printed names it.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import logging
import shlex
import socket
import sys
from typing import TYPE_CHECKING, Any, Final

from emp_tui.cli.common import (
    APP_REQUIRES,
    EXIT_FOUND,
    EXIT_SOURCE,
    EXIT_USAGE,
    SERVE_HOST,
    SERVE_REQUIRES,
    CliError,
    Settings,
    parse_query,
    require,
    say,
)

if TYPE_CHECKING:
    from emp_tui.cli.output import Output

TITLE: Final = "emp-tui"


def app_command(args: argparse.Namespace, settings: Settings) -> list[str]:
    """The command line each visitor's app process runs: `emp-tui` with the app options given
    to `serve` and nothing else (the environment and config.toml reach it as they reach
    `serve`)."""
    argv = [sys.executable, "-m", "emp_tui.cli"]
    if settings.redis_explicit:
        argv += ["--redis-url", settings.redis_url]
    stream = getattr(args, "stream", None)
    if stream:
        argv += ["--stream", stream]
    for path in settings.files:
        argv += ["--file", str(path.resolve())]
    if args.job:
        argv += ["--job", args.job]
    if args.filter:
        argv += ["--filter", args.filter]
    return argv


def _addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise CliError(f"cannot serve on {host!r}: {reason}", EXIT_USAGE) from None


def bind_port(host: str, port: int) -> int:
    """Check that ``host:port`` can be listened on (as the server will: address reuse on) and
    return the port, the free one the system picked when ``port`` is 0. Raises CliError."""
    family, kind, proto, _, sockaddr = _addresses(host, port)[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                message = f"cannot serve on {host}:{port}: the port is in use"
            else:
                message = f"cannot serve on {host}:{port}: {exc.strerror or exc}"
            raise CliError(f"{message} (choose another with --host/--port)", EXIT_USAGE) from None
        return int(sock.getsockname()[1])


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address (only this machine
    can connect)."""
    ip = _ip(host)
    if ip is not None:
        return ip.is_loopback
    addresses = {_ip(str(info[4][0])) for info in _addresses(host, 0)}
    return all(ip is not None and ip.is_loopback for ip in addresses)


def exposure_warning(host: str, port: int) -> str | None:
    """What to say when ``host`` is reachable from other machines; None for loopback."""
    if is_loopback(host):
        return None
    return (
        f"warning: serving on {host or '*'}:{port}, which other machines can reach. There is "
        "no authentication: anyone who can open the page uses the app and reads the stream. "
        f"Keep the default {SERVE_HOST} and use an SSH tunnel, or put an authenticating "
        "proxy in front"
    )


def public_url(host: str, port: int) -> str:
    """The URL a browser opens for ``host:port``: a wildcard address (0.0.0.0, ::) by this
    machine's name, an IPv6 address in brackets."""
    ip = _ip(host)
    if host == "" or (ip is not None and ip.is_unspecified):
        name = socket.gethostname()
    elif ip is not None and ip.version == 6:
        name = f"[{host}]"
    else:
        name = host
    return f"http://{name}:{port}"


def _check_public_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or url.rstrip("/") in ("http:", "https:"):
        raise CliError(f"bad --public-url {url!r}: use http://HOST:PORT or https://...", EXIT_USAGE)
    return url.rstrip("/")


def _reachable(host: str) -> str:
    """The address this machine reaches a server bound to ``host`` on (a wildcard address is
    reached on loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _server(command: list[str], host: str, port: int, url: str) -> Any:
    """textual-serve's Server, printing our one line instead of its banner (which would show
    the app's command line, Redis password included) and logging only warnings."""
    from textual_serve.server import Server

    class AppServer(Server):
        def initialize_logging(self) -> None:
            logging.basicConfig(level=logging.WARNING, format="emp-tui serve: %(message)s")

        async def on_startup(self, app: Any) -> None:
            # The startup hooks run before the port is listened on: the line that tells a
            # browser (or a script) where to go waits until it is.
            self.announcing = asyncio.get_running_loop().create_task(self._announce())

        async def _announce(self) -> None:
            while True:
                try:
                    _, writer = await asyncio.open_connection(_reachable(host), port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
            print(
                f"emp-tui: serving the app at {url} (each browser tab runs its own app; "
                "Ctrl+C stops)",
                flush=True,
            )

    return AppServer(shlex.join(command), host=host, port=port, title=TITLE, public_url=url)


def run_serve(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    require((*APP_REQUIRES, *SERVE_REQUIRES), "serve")
    if args.filter:
        parse_query(args.filter)
    # A bad config.toml would stop every visitor's app: say it once, here.
    from emp_tui.config import ConfigError, load_app_config

    try:
        load_app_config()
    except ConfigError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    missing = [path for path in settings.files if not path.exists()]
    if missing:
        raise CliError(f"cannot serve: {missing[0]} does not exist", EXIT_SOURCE)
    url = _check_public_url(args.public_url) if args.public_url else None
    host = args.host
    port = bind_port(host, args.port)
    url = url or public_url(host, port)
    warning = exposure_warning(host, port)
    if warning:
        say(warning)
    server = _server(app_command(args, settings), host, port, url)
    try:
        server.serve()
    except OSError as exc:  # lost the port between the check and the start
        message = f"cannot serve on {host}:{port}: {exc.strerror or exc}"
        raise CliError(message, EXIT_USAGE) from None
    return EXIT_FOUND
