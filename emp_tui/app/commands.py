"""The command palette's provider: every action of the main screen, by name, with its key."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from emp_tui.app.app import EmpTuiApp


class EmpCommands(Provider):
    """Offers what the screen in front of the user can do (nothing behind a dialog)."""

    @property
    def _app(self) -> EmpTuiApp:
        return cast("EmpTuiApp", self.app)

    def _commands(self) -> list[tuple[str, str, str]]:
        if self.screen is not self._app.screen_stack[0]:
            return []
        return self._app.palette_commands()

    async def discover(self) -> Hits:
        for name, action, help_text in self._commands():
            yield DiscoveryHit(name, partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(name), partial(self._run, action), help=help_text
                )

    async def _run(self, action: str) -> None:
        await self._app.run_action(action)
