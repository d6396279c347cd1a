"""Where a policy key is in the file's text: ``recovery.window`` or ``purge.categories[2].at``
to a line and a column (both from 1), so an editor can show each error at its key.

A small scanner of the TOML the policy files use: table headers (``[purge]``, and
``[[purge.categories]]`` arrays of tables), dotted keys, and values holding arrays and inline
tables, strings of every kind and comments. It finds the deepest part of the key the text
holds: an error about a key that is missing points at the table that should hold it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["locate", "split_key"]

_PART: Final = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_BARE: Final = re.compile(r"[A-Za-z0-9_\-]+")

Path = tuple[str | int, ...]


def split_key(key: str) -> Path:
    """``"purge.categories[2].at"`` -> ``("purge", "categories", 2, "at")``."""
    parts: list[str | int] = []
    for match in _PART.finditer(key):
        if match[1] is not None:
            parts.append(match[1].strip().strip('"'))
        else:
            parts.append(int(match[2]))
    return tuple(parts)


class _Scanner:
    """Walks the text once, recording where each key path starts (the first time it is seen)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.found: dict[Path, int] = {}
        self.arrays: dict[Path, int] = {}  # how many [[x]] headers were seen per path

    # -- low level -------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> str:
        at = self.pos + ahead
        return self.text[at] if at < len(self.text) else ""

    def skip_space(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t\r" or (newlines and char == "\n"):
                self.pos += 1
            elif char == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def skip_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1

    def string(self) -> str:
        """Read a string starting at ``pos``; return its (roughly unescaped) text."""
        quote = self.peek()
        if self.text.startswith(quote * 3, self.pos):
            end = self.text.find(quote * 3, self.pos + 3)
            end = len(self.text) if end < 0 else end + 3
            value = self.text[self.pos + 3 : max(end - 3, self.pos + 3)]
            self.pos = end
            return value
        start = self.pos + 1
        at = start
        while at < len(self.text) and self.text[at] not in (quote, "\n"):
            at += 2 if quote == '"' and self.text[at] == "\\" else 1
        self.pos = min(at + 1, len(self.text))
        return self.text[start:at]

    def key(self) -> tuple[list[str], int] | None:
        """A (dotted) key at ``pos``: its parts and where it starts; None if there is none."""
        start = self.pos
        parts: list[str] = []
        while True:
            self.skip_space(newlines=False)
            char = self.peek()
            if char in ('"', "'"):
                parts.append(self.string())
            else:
                match = _BARE.match(self.text, self.pos)
                if match is None:
                    break
                parts.append(match[0])
                self.pos = match.end()
            self.skip_space(newlines=False)
            if self.peek() != ".":
                break
            self.pos += 1
        if not parts:
            self.pos = start
            return None
        return parts, start

    def note(self, path: Path, at: int) -> None:
        self.found.setdefault(path, at)

    # -- values ----------------------------------------------------------------------------

    def value(self, path: Path) -> None:
        self.skip_space(newlines=False)
        char = self.peek()
        if char == "[":
            self.pos += 1
            index = 0
            while True:
                self.skip_space(newlines=True)
                if self.peek() in ("]", ""):
                    self.pos += 1
                    return
                self.note((*path, index), self.pos)
                self.value((*path, index))
                index += 1
                self.skip_space(newlines=True)
                if self.peek() == ",":
                    self.pos += 1
        elif char == "{":
            self.pos += 1
            while True:
                self.skip_space(newlines=True)
                if self.peek() in ("}", ""):
                    self.pos += 1
                    return
                found = self.key()
                if found is None:  # not TOML: give up on this value
                    self.skip_line()
                    return
                parts, at = found
                self.note((*path, *parts), at)
                if self.peek() == "=":
                    self.pos += 1
                self.value((*path, *parts))
                self.skip_space(newlines=True)
                if self.peek() == ",":
                    self.pos += 1
        elif char in ('"', "'"):
            self.string()
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in ",]}\n#":
                self.pos += 1

    # -- the document ----------------------------------------------------------------------

    def document(self) -> dict[Path, int]:
        table: Path = ()
        while self.pos < len(self.text):
            self.skip_space(newlines=True)
            if self.pos >= len(self.text):
                break
            if self.peek() == "[":
                table = self.header()
                continue
            found = self.key()
            if found is None or self.peek() != "=":
                self.skip_line()
                continue
            parts, at = found
            self.note((*table, *parts), at)
            self.pos += 1
            self.value((*table, *parts))
            self.skip_line()
        return self.found

    def header(self) -> Path:
        start = self.pos
        double = self.text.startswith("[[", self.pos)
        self.pos += 2 if double else 1
        found = self.key()
        self.skip_line()
        if found is None:
            return ()
        path: Path = tuple(found[0])
        self.note(path, start)
        if double:
            index = self.arrays.get(path, 0)
            self.arrays[path] = index + 1
            path = (*path, index)
            self.note(path, start)
        return path


def locate(text: str, key: str) -> tuple[int, int]:
    """The line and column (from 1) of *key* in *text*: of the key itself if the text holds
    it, else of the deepest part that it holds (its table), else ``(1, 1)``."""
    found = _Scanner(text).document()
    path = split_key(key)
    while path:
        at = found.get(path)
        if at is not None:
            line = text.count("\n", 0, at) + 1
            return line, at - (text.rfind("\n", 0, at) + 1) + 1
        path = path[:-1]
    return 1, 1
