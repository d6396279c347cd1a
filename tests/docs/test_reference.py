"""The API reference page documents every public name, and the site's nav lists every page."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

import account_lifecycle

ROOT = Path(__file__).resolve().parents[2]
_ENTRY = re.compile(r"^::: (?P<path>[\w.]+)$", re.MULTILINE)
#: Names documented under their defining module, because importing them needs an extra.
_LAZY = {
    "PostgresStore": "account_lifecycle.adapters.postgres.PostgresStore",
    "AsyncLifecycle": "account_lifecycle.aio.lifecycle.AsyncLifecycle",
    "AsyncAccountStore": "account_lifecycle.aio.ports.AsyncAccountStore",
    "AsyncPurger": "account_lifecycle.aio.ports.AsyncPurger",
    "ThreadedStore": "account_lifecycle.aio.threaded.ThreadedStore",
    "AsyncPostgresStore": "account_lifecycle.aio.postgres.AsyncPostgresStore",
    "SQLAlchemyStore": "account_lifecycle.adapters.sqlalchemy.SQLAlchemyStore",
    "AsyncSQLAlchemyStore": "account_lifecycle.adapters.sqlalchemy.AsyncSQLAlchemyStore",
}


def test_reference_has_an_entry_for_every_public_name() -> None:
    """Each name in ``account_lifecycle.__all__`` has its own ``:::`` entry on docs/reference.md."""
    entries = set(_ENTRY.findall((ROOT / "docs" / "reference.md").read_text(encoding="utf-8")))

    missing = [
        name
        for name in account_lifecycle.__all__
        if _LAZY.get(name, f"account_lifecycle.{name}") not in entries
    ]

    assert missing == []


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    raise TypeError(f"unexpected nav entry {nav!r}")


def test_nav_lists_every_page_once() -> None:
    """Every docs/*.md page is in mkdocs.yml's nav exactly once, and the nav names no missing page."""
    # mkdocs.yml uses a python/name tag for the mermaid fence; a plain loader must skip it
    text = re.sub(r"!!python/name:\S+", "null", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_pages(yaml.safe_load(text)["nav"])
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))

    assert sorted(nav) == pages
