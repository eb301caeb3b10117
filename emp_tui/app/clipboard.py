"""Whether a copy sent with OSC 52 (``y``) can reach the clipboard. The terminal does not
answer, so this reads where the app runs: inside tmux the sequence reaches the outer
terminal only with ``set -g set-clipboard on`` (tmux is asked); GNU screen and Apple's
Terminal drop it. Anywhere else it is taken to arrive."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

TMUX_SECONDS = 1.0


def clipboard_reach(env: Mapping[str, str] | None = None) -> str | None:
    """None when OSC 52 should reach the clipboard, else why it may not (one line)."""
    env = os.environ if env is None else env
    if env.get("TMUX"):
        setting = _tmux_set_clipboard()
        if setting == "on":
            return None
        shown = setting or "unknown"
        return f"inside tmux, set-clipboard is {shown} (set -g set-clipboard on lets it through)"
    if env.get("STY"):
        return "GNU screen does not pass OSC 52 on"
    if env.get("TERM_PROGRAM") == "Apple_Terminal":
        return "Apple's Terminal does not take OSC 52"
    return None


def _tmux_set_clipboard() -> str | None:
    """tmux's ``set-clipboard`` option (on, external, off), or None when tmux does not say."""
    try:
        done = subprocess.run(
            ["tmux", "show-options", "-gv", "set-clipboard"],
            capture_output=True,
            text=True,
            timeout=TMUX_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = done.stdout.strip()
    return value if done.returncode == 0 and value else None
