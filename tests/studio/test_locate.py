"""``locate``: a policy key to the line and column where the text holds it."""

from __future__ import annotations

import pytest

from account_lifecycle import policies
from account_lifecycle.studio.locate import locate, split_key

ALLCLIENTS = policies.path("allclients").read_text(encoding="utf-8")


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_split_key_reads_dotted_parts_and_indexes() -> None:
    """Dots part keys, brackets index lists."""
    assert split_key("purge.categories[2].at") == ("purge", "categories", 2, "at")
    assert split_key("recovery.window") == ("recovery", "window")


@pytest.mark.parametrize(
    ("key", "needle", "column"),
    [
        ("name", 'name = "allclients"', 1),
        ("recovery.window", 'window = "3 months"', 1),
        ("permissions.confirm", 'confirm = ["owner"]', 1),
        ("purge.categories[2].at", '{ name = "todos", at = "cancel" }', 21),
        ("purge.categories[6]", '{ name = "backups"', 3),
        ("survey.outcomes[1]", "outcomes = [", 29),
    ],
)
def test_a_key_the_file_holds_is_found_at_its_own_line_and_column(key: str, needle: str, column: int) -> None:
    """Tables, inline tables inside arrays, and list items are all found."""
    assert locate(ALLCLIENTS, key) == (line_of(ALLCLIENTS, needle), column)


def test_a_missing_key_points_at_its_table() -> None:
    """An error about a key the file lacks (``is required``) shows at the table that should hold it."""
    assert locate(ALLCLIENTS, "purge.on_hold") == (line_of(ALLCLIENTS, "[purge]"), 1)


def test_a_key_in_no_table_the_file_has_points_at_the_start() -> None:
    assert locate(ALLCLIENTS, "identity.email") == (1, 1)


def test_arrays_of_tables_count_their_headers() -> None:
    """``[[purge.categories]]`` headers are items 0, 1, ... of the list."""
    text = (
        '[[purge.categories]]\nname = "a"\nat = "cancel"\n\n[[purge.categories]]\nname = "b"\nat = "soon"\n'
    )
    assert locate(text, "purge.categories[1].at") == (7, 1)
    assert locate(text, "purge.categories[0].name") == (2, 1)


def test_strings_comments_and_dotted_keys_do_not_mislead_it() -> None:
    """Brackets inside strings and comments are not structure; a dotted key is its table's key."""
    text = (
        'description = "a [bracket] { brace"  # and [one] here\n'
        "recovery.window = '3 months'\n"
        'prerequisites = [\n  "a",  # first\n  """b""",\n]\n'
    )
    assert locate(text, "recovery.window") == (2, 1)
    assert locate(text, "prerequisites[1]") == (5, 3)
