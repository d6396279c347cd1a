"""Every python block of docs/django.md runs as written, in order, in one namespace, inside the
tests' configured Django project (the example's settings, an empty SQLite database)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "django.md"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def test_the_django_page_code_blocks_run_in_order(lc: Any) -> None:
    """The settings, the ORM purgers, the views' transactions and the signal receiver all run;
    the page's own asserts hold (the account was cancelled and its contacts erased)."""
    text = PAGE.read_text(encoding="utf-8")
    blocks = [(text.count("\n", 0, m.start(1)), m.group(1)) for m in _FENCE.finditer(text)]
    assert len(blocks) >= 4
    module = types.ModuleType("docs_django")
    module.__file__ = str(PAGE)
    sys.modules[module.__name__] = module
    try:
        for offset, source in blocks:
            assert not source.startswith("# docs: no-run:"), "every block of docs/django.md runs"
            exec(compile("\n" * offset + source, str(PAGE), "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]

    assert module.__dict__["record"].account_id == "acct-42"
    assert {p.category for p in module.__dict__["PURGERS"]} == {c.name for c in lc.policy.purge.categories}
