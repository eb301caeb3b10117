"""The help screen: every key of the app, by where it works, with the binding ids that
``[keymap]`` in config.toml can rebind."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

KeyRow = tuple[str, str, str]  # keys as shown, what it does, binding id
Section = tuple[str, Sequence[KeyRow]]


def keys_table(sections: Sequence[Section]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold", no_wrap=True)
    table.add_column()
    table.add_column(style="dim", no_wrap=True)
    for index, (title, rows) in enumerate(sections):
        if index:
            table.add_row("", "", "")
        table.add_row("", Text(title, "bold underline"), "")
        for keys, description, binding_id in rows:
            table.add_row(Text(keys), Text(description), Text(binding_id))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help.close")]

    def __init__(self, sections: Sequence[Section], config_hint: str) -> None:
        super().__init__()
        self.sections = sections
        self.config_hint = config_hint

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Label("emp-tui keys", classes="dialog-title")
            with VerticalScroll(id="help-body"):
                yield Static(keys_table(self.sections))
            yield Static(Text(self.config_hint, "dim"), id="help-hint")

    def action_close(self) -> None:
        self.dismiss(None)
