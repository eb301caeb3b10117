"""An Input that follows the app's cursor-blink setting (off for tests and screenshots)."""

from __future__ import annotations

from textual.widgets import Input


class AppInput(Input):
    def on_mount(self) -> None:
        self.cursor_blink = bool(getattr(self.app, "cursor_blink", True))
