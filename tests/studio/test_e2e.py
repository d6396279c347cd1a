"""The studio page, clicked through in a real headless Chromium.

Needs the ``examples`` extra (playwright) and Debian's ``chromium`` (Playwright's own browser
download does not work here, so it drives the system one); without them the test skips on a
laptop and fails under ``CI=true``. Every step leaves a screenshot under
``$ACCOUNT_LIFECYCLE_ARTIFACTS/studio/<test>/`` (else ``artifacts/studio/<test>/``). Each
action waits for the page element it expects, bounded by the page's default timeout: no
sleeps.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS

from account_lifecycle import policies
from account_lifecycle.studio import StudioServer

ROOT = Path(__file__).resolve().parents[2]
ACTION_TIMEOUT_MS = 15_000  # per action; a step that takes longer is a failure, not a wait
ALLCLIENTS = policies.path("allclients").read_text(encoding="utf-8")
MEMBER_CONFIRMS = ALLCLIENTS.replace('confirm = ["owner"]', 'confirm = ["owner", "member"]')

pytestmark = pytest.mark.slow


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    root = Path(os.environ.get("ACCOUNT_LIFECYCLE_ARTIFACTS") or ROOT / "artifacts")
    folder = root / "studio" / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def page(playwright: Any, server: StudioServer) -> Iterator[Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(ACTION_TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(server.url)
        page.wait_for_selector("body[data-ready=true]")
        yield page
        assert errors == []
    finally:
        browser.close()


class Steps:
    def __init__(self, page: Any, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.taken = 0

    def shot(self, name: str) -> None:
        self.taken += 1
        self.page.screenshot(path=str(self.folder / f"{self.taken:02d}-{name}.png"), full_page=True)


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def edit(page: Any, text: str) -> None:
    page.fill("#source", text)


def wait_valid(page: Any) -> None:
    page.wait_for_selector("#validity.ok")


def test_a_product_manager_and_a_reviewer_walk_through_the_studio(
    page: Any, shots: Path, policy_file: Path
) -> None:
    steps = Steps(page, shots)
    wait_valid(page)
    assert page.input_value("#source") == ALLCLIENTS
    steps.shot("opened")

    # 1. an invalid value: the error shows at its line, in check's words
    broken = ALLCLIENTS.replace('window = "3 months"', 'window = "3 monthz"')
    edit(page, broken)
    error = page.wait_for_selector('#errors li[data-key="recovery.window"]')
    line = line_of(broken, "window =")
    assert error.get_attribute("data-line") == str(line)
    assert f"line {line}, column 1" in error.inner_text()
    assert "recovery.window:" in error.inner_text()
    assert page.inner_text("#gutter .ln.error") == str(line)
    assert "bad" in (page.get_attribute("#validity", "class") or "")
    assert page.is_disabled("#save")
    steps.shot("invalid-window")

    # 2. fixed to another window: valid again, and the diagram is redrawn with it
    drawn_before = page.inner_html("#diagram")
    edit(page, ALLCLIENTS.replace('window = "3 months"', 'window = "6 months"'))
    page.wait_for_selector(
        '#diagram g[data-state="restorable"] title:text-matches("window 6 months")', state="attached"
    )
    wait_valid(page)
    assert page.query_selector("#gutter .ln.error") is None
    assert page.inner_html("#diagram") != drawn_before
    steps.shot("fixed-diagram-redrawn")

    # 3. let a member confirm: owner_confirms fails; replay its counterexample
    edit(page, MEMBER_CONFIRMS)
    page.wait_for_selector('.proof[data-invariant="owner_confirms"] .status.fails')
    steps.shot("invariant-broken")
    page.click('button.replay[data-invariant="owner_confirms"]')
    page.wait_for_selector("#replay li")
    replayed = page.query_selector_all("#replay li")
    assert len(replayed) == 4
    assert "member: confirm" in replayed[2].inner_text()
    assert page.query_selector("#replay li.disagrees") is None
    assert "user:member" in page.inner_text("#audit")
    steps.shot("counterexample-replayed")

    # 4. the difference from the built-in policy, in words
    page.wait_for_selector("#diff li")
    assert page.inner_text("#diff-summary").startswith("against allclients@1: ")
    assert "difference" in page.inner_text("#diff-summary")
    assert "member: confirm" in page.inner_text("#diff")
    page.locator("#diff-panel").scroll_into_view_if_needed()
    steps.shot("difference")

    # 5. back to AllClients: an account through confirm, three months later purged
    edit(page, ALLCLIENTS)
    page.wait_for_selector('.proof[data-invariant="owner_confirms"] .status.holds')
    page.wait_for_selector("#diff-summary:text-matches('behaves the same')")
    assert page.inner_text("#replay") == ""  # the replay was of the policy before
    page.select_option("#actor", "owner")
    for action in ("request_cancellation", "skip_survey", "confirm"):
        page.click(f'#actions button[data-action="{action}"]')
    page.wait_for_selector('#sim-state[data-state="restorable"]')
    until = page.inner_text("#tl-until")
    assert page.inner_text('#erasures tr[data-category="backups"] td:nth-child(3)') == until
    assert page.inner_text('#erasures tr[data-category="contacts"] td:nth-child(4)') == "erased"
    steps.shot("simulated-confirm")
    page.click('button.clock[data-amount="3"][data-unit="months"]')
    page.wait_for_selector('#sim-state[data-state="purged"]')
    assert page.inner_text("#now") == until
    assert page.inner_text('#erasures tr[data-category="backups"] td:nth-child(4)') == "erased"
    assert page.inner_text('#erasures tr[data-category="backups"] td:nth-child(3)') == until
    assert page.inner_text("#audit tbody tr:last-child td:last-child") == "restorable → purged"
    steps.shot("three-months-later-purged")

    # 6. save, then reload: the file on disk is the edited text, and the page shows it
    saved = ALLCLIENTS.replace('window = "3 months"', 'window = "4 months"')
    edit(page, saved)
    wait_valid(page)
    page.wait_for_selector(
        '#diagram g[data-state="restorable"] title:text-matches("window 4 months")', state="attached"
    )
    page.click("#save")
    page.wait_for_selector("#save-status:text-matches('saved allclients.toml')")
    assert policy_file.read_text(encoding="utf-8") == saved
    assert (policy_file.parent / "allclients.toml.bak").read_text(encoding="utf-8") == ALLCLIENTS
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    wait_valid(page)
    assert page.input_value("#source") == saved
    steps.shot("saved-and-reloaded")
