"""The dead-letter file: one JSON line per request a backend rejected for good, with the
request itself, so that nothing it held is lost and it can be looked at or sent again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from collector.files import make_dirs, open_for_append


class DeadLetters:
    def __init__(self, path: Path, mode: int) -> None:
        self.path = path
        self.mode = mode

    def write(self, record: dict[str, Any]) -> None:
        """Append one line (one ``write``, so lines never interleave); raises OSError."""
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE, default=str)
        make_dirs(self.path.parent, self.mode)
        fd = open_for_append(self.path, self.mode)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
