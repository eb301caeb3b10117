"""Files and directories the collector writes (events, spool, dead letters): private unless
configured otherwise. The dead letters hold whole requests and the events whole payloads,
so the default is 0600 for files and 0700 for the directories the collector creates."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

DEFAULT_FILE_MODE: Final = 0o600


def dir_mode(file_mode: int) -> int:
    """The mode of a directory holding files of ``file_mode``: whoever may read the files
    may also enter the directory (0600 -> 0700, 0640 -> 0750, 0644 -> 0755)."""
    mode = file_mode | stat.S_IRWXU
    if mode & stat.S_IRGRP:
        mode |= stat.S_IXGRP
    if mode & stat.S_IROTH:
        mode |= stat.S_IXOTH
    return mode


def make_dirs(path: Path, file_mode: int) -> None:
    """Create ``path`` and any missing parents with :func:`dir_mode`; existing directories
    are left as they are."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    mode = dir_mode(file_mode)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            continue
        os.chmod(directory, mode)  # mkdir's mode is filtered by the umask


def open_for_append(path: Path, file_mode: int) -> int:
    """An ``O_APPEND`` descriptor of ``path``; a file it creates gets ``file_mode`` exactly."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        pass
    return create(path, file_mode, os.O_WRONLY | os.O_APPEND)


def create(path: Path, file_mode: int, flags: int = os.O_WRONLY | os.O_TRUNC) -> int:
    """Create (or truncate) ``path`` with ``file_mode`` exactly, whatever the umask."""
    fd = os.open(path, flags | os.O_CREAT, file_mode)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != file_mode:
            os.fchmod(fd, file_mode)
    except OSError:
        os.close(fd)
        raise
    return fd
