"""Jump to a job: type or paste a job ID; known IDs complete inline (→) and with Tab, and are
listed, the likeliest first: the selected event's job, the jobs the Problems view names, then
the most recent. Enter on a prefix that only one known job has opens that job."""

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
HINT = "Enter opens · Tab completes · ↓ picks from the list · Esc cancels"


class JumpToJobScreen(ModalScreen[str | None]):
    """Dismisses with the job ID to open, or None."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="jump.cancel"),
        Binding("down", "to_list", "Known job IDs", show=False, id="jump.list"),
        Binding(
            "tab", "complete", "Complete the job ID", show=False, priority=True, id="jump.complete"
        ),
    ]

    def __init__(
        self, known: list[str], initial: str = "", reasons: dict[str, str] | None = None
    ) -> None:
        """``known``: the job IDs at hand, the likeliest first; ``reasons``: why some are
        there (``selected``, ``problem``), shown beside them."""
        super().__init__()
        self.known = known
        self.initial = initial
        self.reasons = reasons or {}

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
            yield Label(Text(HINT, "dim"), id="jump-hint")

    def on_mount(self) -> None:
        self._fill(self.initial)

    def starting_with(self, prefix: str) -> list[str]:
        return [job for job in self.known if job.startswith(prefix)]

    def _fill(self, prefix: str) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        wanted = prefix.strip()
        starts = self.starting_with(wanted)
        others = [job for job in self.known if wanted in job and not job.startswith(wanted)]
        matches = (starts + others)[:SHOWN]
        shown = []
        for job in matches:
            label = Text(inert(job, 80))
            if job in self.reasons:
                label.append(f"  {self.reasons[job]}", "dim")
            shown.append(Option(label, id=job))
        options.add_options(shown)
        options.display = bool(matches)

    def _say(self, text: str) -> None:
        self.query_one("#jump-hint", Label).update(Text(text, "dim"))

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._fill(event.value)
        self._say(HINT)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:
            return
        if value in self.known:
            self.dismiss(value)
            return
        starts = self.starting_with(value)
        if len(starts) == 1:
            self.dismiss(starts[0])  # a prefix only one job has: that job
        elif starts:
            self._say(f"{len(starts)} jobs start with {inert(value, 40)}: Tab completes, ↓ picks")
        else:
            self.dismiss(value)  # not at hand: the sources are asked for it

    def action_complete(self) -> None:
        """Tab: the job ID when one known job starts with what is typed, else as much as
        those that do share; when that adds nothing, the list."""
        field = self.query_one(Input)
        value = field.value.strip()
        starts = self.starting_with(value)
        if not starts:
            self.app.bell()
            self._say(f"No job at hand starts with {inert(value, 40)}")
            return
        common = _common_prefix(starts)
        if len(common) > len(value):
            field.value = common
            field.cursor_position = len(common)
            if len(starts) > 1:
                self._say(f"{len(starts)} jobs start with {inert(common, 40)}: Tab again or ↓")
        elif field.has_focus:
            self.action_to_list()
        else:
            field.focus()

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


def _common_prefix(texts: list[str]) -> str:
    """The characters every one of ``texts`` begins with."""
    first, last = min(texts), max(texts)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]
