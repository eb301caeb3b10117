"""A real headless Chromium for the tests, driven over the DevTools protocol through a pipe.

Chromium's ``--remote-debugging-pipe`` reads protocol messages (JSON, each ended by a NUL)
from file descriptor 3 and writes its answers and events to descriptor 4: a few dozen lines
of our own, no port, no websocket, and no library that brings a browser of its own.

:class:`Browser` starts Debian's ``chromium`` with the flags a sandboxed root needs and a
fresh profile; :meth:`Browser.open` gives a :class:`Tab`, which navigates, evaluates
JavaScript and takes screenshots. :data:`TERMINAL_HOOK` lets a tab read the text of the
xterm.js terminal that textual-serve's page draws on a canvas (:meth:`Tab.terminal_text`).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_binary() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


# The page builds its terminal as `this.terminal = new Terminal(...)` inside a closure and
# keeps no global reference; this setter, installed before the page's scripts run, sees that
# assignment, turns it back into a plain property and keeps the terminal where a test can
# reach it. Reading goes through xterm.js's public buffer API: the cells the terminal shows,
# whichever renderer (WebGL, canvas, DOM) paints them.
TERMINAL_HOOK = """
(() => {
  Object.defineProperty(Object.prototype, "terminal", {
    configurable: true,
    get() { return undefined; },
    set(value) {
      Object.defineProperty(this, "terminal", {
        value, writable: true, configurable: true, enumerable: true,
      });
      if (value && value.buffer && value.buffer.active) { window.__empTerminal = value; }
    },
  });
  window.__empTerminalText = () => {
    const terminal = window.__empTerminal;
    if (!terminal) { return null; }
    const buffer = terminal.buffer.active;
    const lines = [];
    for (let row = 0; row < terminal.rows; row++) {
      const line = buffer.getLine(buffer.viewportY + row);
      lines.push(line ? line.translateToString(true) : "");
    }
    return {cols: terminal.cols, rows: terminal.rows, text: lines.join("\\n")};
  };
})();
"""


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with a fresh profile; close() ends it and removes the profile."""

    def __init__(self, binary: str, *, width: int = 1600, height: int = 1000) -> None:
        self.width, self.height = width, height
        self.profile = Path(tempfile.mkdtemp(prefix="emp-chromium-"))
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def _pipe_fds() -> None:  # in the child: the pipes as descriptors 3 and 4
            read = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            write = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",  # root in a container
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--mute-audio",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=False,  # the two descriptors set up by _pipe_fds; the rest are CLOEXEC
            preexec_fn=_pipe_fds,
            start_new_session=True,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._closed = False
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    # -- the protocol --------------------------------------------------------------------

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send one command and wait for its answer (events that arrive meanwhile are kept in
        ``events``). Raises BrowserError on an error answer, a dead browser or the timeout."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for answer in self._read(deadline, method):
                if answer.get("id") != self._next_id:
                    self.events.append(answer)
                elif "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                else:
                    return dict(answer.get("result", {}))

    def _read(self, deadline: float, method: str) -> list[dict[str, Any]]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"{method}: no answer from chromium")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"{method}: chromium ended ({self._stderr_tail()})")
            self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(message) for message in messages]

    def _stderr_tail(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "still running"
        return self.proc.stderr.read().decode(errors="replace")[-500:]

    # -- tabs ----------------------------------------------------------------------------

    def open(self, url: str, *, hook: str | None = TERMINAL_HOOK) -> Tab:
        """A new tab at ``url``, with ``hook`` run before the page's own scripts."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        tab = Tab(self, target, session)
        tab.call("Page.enable")
        tab.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
        )
        if hook:
            tab.call("Page.addScriptToEvaluateOnNewDocument", {"source": hook})
        tab.call("Page.navigate", {"url": url})
        return tab

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.proc.poll() is None:
            try:
                self.call("Browser.close", timeout=10)
            except (BrowserError, OSError):
                self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        os.close(self._to_browser)
        os.close(self._from_browser)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Tab:
    def __init__(self, browser: Browser, target: str, session: str) -> None:
        self.browser, self.target, self.session = browser, target, session

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.call(method, params, session=self.session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (a promise is awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def terminal_text(self) -> dict[str, Any] | None:
        """What the page's terminal shows: ``{"cols", "rows", "text"}``, or None before the
        terminal exists (needs :data:`TERMINAL_HOOK`)."""
        value = self.evaluate("window.__empTerminalText ? window.__empTerminalText() : null")
        return value if isinstance(value, dict) else None

    def wait_for_text(self, *needles: str, timeout: float = 60.0) -> str:
        """Poll the terminal until it shows every one of ``needles``; its text. On timeout a
        BrowserError carries what it showed last."""
        deadline = time.monotonic() + timeout
        shown = ""
        while True:
            screen = self.terminal_text()
            shown = screen["text"] if screen else ""
            if screen and all(needle in shown for needle in needles):
                return shown
            if time.monotonic() > deadline:
                if screen is None:
                    raise BrowserError("the page never made its terminal (or the hook missed it)")
                missing = [needle for needle in needles if needle not in shown]
                raise BrowserError(f"the terminal never showed {missing}; it showed:\n{shown}")
            time.sleep(0.2)

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        self.browser.call("Target.closeTarget", {"targetId": self.target})
