"""Reading files named on a command line without trusting the name: no NUL, a bounded length,
a regular file only (never ``/dev/zero``, a pipe or a directory) and a bounded size.

``read_capped`` never reads more than its limit plus one byte, so a huge or endless file cannot
exhaust memory; every refusal is an ``UnreadableFile`` (a ``ValueError``) with one line to show.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Final

__all__ = ["MAX_FILE_BYTES", "MAX_PATH", "UnreadableFile", "checked_path", "read_capped", "shown"]

#: The longest path taken (Linux's PATH_MAX).
MAX_PATH: Final = 4096
#: The largest file read: a policy file is a few kilobytes.
MAX_FILE_BYTES: Final = 1 << 20


class UnreadableFile(ValueError):
    """A path that cannot name a file, or a file that is not one to read (a device, a pipe, a
    directory, too large, missing, not permitted). The message is one line."""


def shown(text: str, width: int = 80) -> str:
    """*text* for a one-line message: as it is when short and printable, else quoted, cut short."""
    if len(text) <= width and text.isprintable():
        return text
    if len(text) <= width:
        return repr(text)
    return f"{text[:width]!r}... ({len(text)} characters)"


def checked_path(source: str) -> Path:
    """*source* as a path, if it can be one: no NUL character, at most ``MAX_PATH`` characters."""
    if "\x00" in source:
        raise UnreadableFile(f"cannot read {shown(source)}: a path cannot hold a NUL character")
    if len(source) > MAX_PATH:
        raise UnreadableFile(f"cannot read {shown(source)}: a path has at most {MAX_PATH} characters")
    return Path(source)


def read_capped(source: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file *source*, at most *limit* of them: a device, a pipe or a
    directory is refused before it is opened, a larger file after *limit* + 1 bytes were read."""
    path = checked_path(source)
    data = b""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            reason = "Is a directory"
        elif not stat.S_ISREG(info.st_mode):
            reason = "not a regular file"
        elif info.st_size > limit:
            reason = f"larger than {limit} bytes"
        else:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
            reason = f"larger than {limit} bytes" if len(data) > limit else ""
    except OSError as exc:
        reason = str(exc.strerror or type(exc).__name__)
    if reason:
        raise UnreadableFile(f"cannot read {shown(source)}: {reason}")
    return data
