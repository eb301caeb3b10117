"""Jump to a job: type or paste a job ID; known IDs complete inline and are listed."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from emp_tui.app.widgets.inputs import AppInput
from emp_tui.text import inert

SHOWN = 12


class JumpToJobScreen(ModalScreen[str | None]):
    """Dismisses with the job ID to open, or None."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="jump.cancel"),
        Binding("down", "to_list", "Known job IDs", show=False, id="jump.list"),
    ]

    def __init__(self, known: list[str], initial: str = "") -> None:
        super().__init__()
        self.known = known
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Jump to job", classes="dialog-title")
            yield AppInput(
                self.initial,
                placeholder="job ID (Tab completes from the jobs at hand)",
                suggester=SuggestFromList(self.known, case_sensitive=True),
                id="job-input",
            )
            yield OptionList(id="job-options")
            yield Label(
                Text("Enter opens · ↓ picks from the list · Esc cancels", "dim"), id="jump-hint"
            )

    def on_mount(self) -> None:
        self._fill(self.initial)

    def _fill(self, prefix: str) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        wanted = prefix.strip()
        matches = [job for job in self.known if wanted in job][:SHOWN]
        options.add_options([Option(Text(inert(job, 80)), id=job) for job in matches])
        options.display = bool(matches)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value:
            self.dismiss(value)

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_to_list(self) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            options.focus()
            options.highlighted = 0

    def action_cancel(self) -> None:
        self.dismiss(None)
