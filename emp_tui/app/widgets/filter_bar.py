"""The filter bar: one line to type a query in, its history, and an inline error that points at
the offending token. Parsing is the app's business (the query module's, really): the bar posts
:class:`FilterSubmitted` and shows what the app tells it (:meth:`FilterBar.accept`,
:meth:`FilterBar.reject`)."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Static

from emp_tui.app.messages import FilterLeft, FilterSubmitted
from emp_tui.app.widgets.inputs import AppInput
from emp_tui.text import inert

HISTORY_SIZE = 100


class FilterInput(AppInput):
    """The query input: ↑/↓ walk the history, Esc clears the filter (in an empty bar: leaves
    it). Focusing it selects its text, so typing replaces the filter."""

    BINDINGS = [
        Binding("up", "history(-1)", "Older filter", show=False, id="filter.history_back"),
        Binding("down", "history(1)", "Newer filter", show=False, id="filter.history_forward"),
        Binding(
            "escape",
            "clear_filter",
            "Clear the filter (empty: back to the stream)",
            show=False,
            id="filter.clear",
        ),
    ]

    def __init__(self, value: str = "", **kwargs: object) -> None:
        super().__init__(
            value,
            placeholder="filter: service:worker type:job.* job:… level:>=warn since:10m  (/)",
            **kwargs,  # type: ignore[arg-type]
        )
        self.history: list[str] = []
        self._position: int | None = None
        self._draft = ""
        self._fresh = False
        """Focused and no key typed since: a ``/`` now is the habit of the key that opens
        the bar (lnav, less, vim), not the start of a /regex/."""

    def on_focus(self) -> None:
        self._fresh = True

    def on_key(self, event: events.Key) -> None:
        fresh, self._fresh = self._fresh, False
        if fresh and event.character == "/" and not self.value:
            event.stop()
            event.prevent_default()

    def remember(self, text: str) -> None:
        if text.strip():
            if text in self.history:
                self.history.remove(text)
            self.history.append(text)
            del self.history[:-HISTORY_SIZE]
        self._position = None

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._position is None:
            if step > 0:
                return
            self._draft = self.value
            position = len(self.history) - 1
        else:
            position = self._position + step
        if position < 0:
            position = 0
        if position >= len(self.history):
            self._position = None
            self.value = self._draft
        else:
            self._position = position
            self.value = self.history[position]
        self.cursor_position = len(self.value)

    def action_clear_filter(self) -> None:
        self._position = None
        if not self.value:
            self.post_message(FilterLeft())
            return
        self.value = ""
        self.post_message(FilterSubmitted(""))


class FilterBar(Vertical):
    """The query input and, under it when the query is bad, the error with a caret."""

    DEFAULT_CSS = """
    FilterBar { height: auto; }
    FilterBar > Horizontal { height: 1; }
    FilterBar #filter-prompt { width: 2; color: $accent; text-style: bold; }
    FilterBar FilterInput { border: none; height: 1; padding: 0; background: $surface; }
    FilterBar FilterInput:focus { border: none; background: $boost; }
    FilterBar #filter-error { display: none; color: $error; height: auto; padding-left: 2; }
    FilterBar.-error #filter-error { display: block; }
    """

    def __init__(self, value: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._initial = value
        self.applied = ""

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label("/", id="filter-prompt")
            yield FilterInput(self._initial, id="filter-input")
        yield Static(id="filter-error")

    @property
    def input(self) -> FilterInput:
        return self.query_one(FilterInput)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(FilterSubmitted(event.value))

    def accept(self, text: str) -> None:
        """The app applied ``text``: remember it, clear any error."""
        self.applied = text
        self.input.remember(text)
        if self.input.value != text:
            self.input.value = text
        self.remove_class("-error")
        self.query_one("#filter-error", Static).update("")

    def reject(self, text: str, message: str, position: int, token: str) -> None:
        """``text`` does not parse: show where, keep the filter that was applied."""
        width = max(1, len(token))
        error = Text(no_wrap=True)
        error.append(inert(text, 400) + "\n", "bold")
        error.append(" " * position + "^" + "~" * (width - 1), "bold")
        error.append(f"  {inert(message, 200)} — still showing: ", "")
        error.append(inert(self.applied, 80) or "(no filter)", "italic")
        self.query_one("#filter-error", Static).update(error)
        self.add_class("-error")
