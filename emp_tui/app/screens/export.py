"""The export dialog: a path (with a sensible default) and a format; asks before overwriting.
It only asks: the app's export worker writes the file (with :mod:`emp_tui.export`).

The format follows the file name as in the CLI (:func:`emp_tui.export.format_for_path`):
typing ``story.trace.json`` selects chrome-trace, and picking a format swaps the name's ending.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet

from emp_tui.app.screens.confirm import ConfirmScreen
from emp_tui.app.widgets.inputs import AppInput
from emp_tui.export import FORMATS, format_for_path, with_format
from emp_tui.text import inert


@dataclass(frozen=True)
class ExportRequest:
    path: Path
    fmt: str
    overwrite: bool


class ExportScreen(ModalScreen[ExportRequest | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="export.cancel")]

    def __init__(self, default_path: Path, count: int, query_text: str, fmt: str = "jsonl") -> None:
        super().__init__()
        self.default_path = default_path
        self.count = count
        self.query_text = query_text
        self.fmt = fmt

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Export the filtered events", classes="dialog-title")
            what = Text(f"{self.count:,} events", "bold")
            what.append(" · filter: ", "")
            what.append(inert(self.query_text, 60) or "(none)", "italic")
            yield Label(what, id="export-what")
            yield Label("Path")
            yield AppInput(str(self.default_path), id="export-path")
            yield Label(self._where(str(self.default_path)), id="export-where")
            yield Label("Format")
            with RadioSet(id="export-format"):
                for fmt in FORMATS:
                    yield RadioButton(fmt, value=fmt == self.fmt, id=f"fmt-{fmt}")
            with Horizontal(classes="buttons"):
                yield Button("Export", variant="primary", id="export")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    @on(RadioSet.Changed)
    def _format_changed(self, event: RadioSet.Changed) -> None:
        fmt = str(event.pressed.label)
        path_input = self.query_one("#export-path", Input)
        self.fmt = fmt
        path_input.value = with_format(path_input.value, fmt)

    def _where(self, raw: str) -> Text:
        """The absolute path the file goes to, and the format the name asks for."""
        raw = raw.strip()
        if not raw:
            return Text("")
        where = Text("→ ", "dim")
        where.append(inert(str(Path(raw).expanduser().absolute()), 300))
        named = format_for_path(raw)
        where.append(f"  ({named or self.fmt})", "dim")
        return where

    @on(Input.Changed, "#export-path")
    def _path_changed(self, event: Input.Changed) -> None:
        named = format_for_path(event.value)
        if named is not None and named != self.fmt:
            self.fmt = named
            self.query_one(f"#fmt-{named}", RadioButton).value = True
        self.query_one("#export-where", Label).update(self._where(event.value))

    @on(Input.Submitted)
    def _path_submitted(self) -> None:
        self._submit()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "export":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        raw = self.query_one("#export-path", Input).value.strip()
        if not raw:
            self.notify("Give a path to write to.", severity="warning")
            return
        path = Path(raw).expanduser()
        self.fmt = format_for_path(path) or self.fmt
        if path.is_dir():
            self.notify(f"{inert(str(path), 200)} is a directory.", severity="error", markup=False)
            return
        if path.exists():

            def answered(yes: bool | None) -> None:
                if yes:
                    self.dismiss(ExportRequest(path, self.fmt, overwrite=True))

            question = f"{inert(str(path), 200)} exists. Overwrite it?"
            self.app.push_screen(ConfirmScreen(question, yes="Overwrite"), answered)
            return
        self.dismiss(ExportRequest(path, self.fmt, overwrite=False))

    def action_cancel(self) -> None:
        self.dismiss(None)
