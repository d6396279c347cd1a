"""Every ```python block of the documentation site and of the README runs as written.

Each page's blocks run in order in one namespace (a later block may use what an earlier one
built), in a fresh temporary working directory. A block opts out only with a first line
``# docs: no-run: <reason>``. ``docs/stores.md`` is left to ``tests/contract/test_stores_doc.py``,
which runs its PostgreSQL examples against the test server.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[2]
NO_RUN = "# docs: no-run:"
#: Pages whose blocks another test runs, with the reason.
ELSEWHERE = {
    "docs/stores.md": "tests/contract/test_stores_doc.py runs it, PostgreSQL included",
    "docs/django.md": "tests/django/test_docs.py runs it inside the tests' configured Django project",
}
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


@attrs.frozen
class Block:
    page: str
    line: int  # of the block's first code line, counted from 1
    source: str

    @property
    def opted_out(self) -> bool:
        return self.source.startswith(NO_RUN)


def parse_blocks(page: str, text: str) -> list[Block]:
    return [
        Block(page, text.count("\n", 0, match.start(1)) + 1, match.group(1))
        for match in _FENCE.finditer(text)
    ]


def blocks_of(page: str) -> list[Block]:
    return parse_blocks(page, (ROOT / page).read_text(encoding="utf-8"))


def pages() -> list[str]:
    docs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    return ["README.md", *docs]


def run_page(page: str, blocks: list[Block]) -> dict[str, object]:
    """Run *blocks* in order in one module namespace; tracebacks point at the page's lines."""
    module = types.ModuleType(f"docs_{Path(page).stem.replace('-', '_')}")
    module.__file__ = str(ROOT / page)
    sys.modules[module.__name__] = module  # dataclasses and attrs look their module up
    try:
        for block in blocks:
            if block.opted_out:
                continue
            padded = "\n" * (block.line - 1) + block.source
            exec(compile(padded, str(ROOT / page), "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
        _close_stores(module.__dict__)
    return module.__dict__


def _close_stores(namespace: dict[str, object]) -> None:
    """Close the SQLite files a page opened, so no connection outlives its test."""
    from account_lifecycle import Lifecycle, SQLiteStore

    for value in list(namespace.values()):
        store = value.store if isinstance(value, Lifecycle) else value
        if isinstance(store, SQLiteStore):
            store.close()


RUN_HERE = [page for page in pages() if page not in ELSEWHERE and blocks_of(page)]


@pytest.mark.parametrize("page", RUN_HERE)
def test_page_code_blocks_run_in_order(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page's python blocks run in order in one namespace, in an empty working directory."""
    monkeypatch.chdir(tmp_path)
    blocks = blocks_of(page)

    namespace = run_page(page, blocks)

    ran = [b for b in blocks if not b.opted_out]
    assert ran, f"{page}: every block opted out"
    assert "__builtins__" in namespace  # exec really ran in this namespace


def test_every_python_block_is_run_somewhere() -> None:
    """No page with python blocks escapes: each is run here or by the test named in ELSEWHERE."""
    with_blocks = {page for page in pages() if blocks_of(page)}

    assert with_blocks == set(RUN_HERE) | (with_blocks & set(ELSEWHERE))
    assert {"README.md", "docs/concepts.md", "docs/policies.md"} <= set(RUN_HERE)
    for page, reason in ELSEWHERE.items():
        assert (ROOT / reason.split()[0]).exists(), page


def test_opting_out_is_rare_and_explained() -> None:
    """At most two blocks on the whole site skip execution, each saying why."""
    opted_out = [b for page in RUN_HERE for b in blocks_of(page) if b.opted_out]

    assert len(opted_out) <= 2, [f"{b.page}:{b.line}" for b in opted_out]
    for block in opted_out:
        reason = block.source.splitlines()[0].removeprefix(NO_RUN).strip()
        assert reason, f"{block.page}:{block.line}: say why the block cannot run"


def test_the_collector_finds_fenced_blocks_and_their_lines() -> None:
    """Fences count only at the start of a line, other languages are ignored, lines count from 1."""
    text = (
        "# T\n\n```python\nx = 1\n```\n\n"
        "text ```python inline```\n\n```python\ny = x + 1\n```\n\n```sh\nls\n```\n"
    )

    found = parse_blocks("page.md", text)

    assert [(b.line, b.source) for b in found] == [(4, "x = 1\n"), (10, "y = x + 1\n")]
