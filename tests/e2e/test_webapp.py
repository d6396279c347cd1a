"""The example web app (examples/webapp), clicked through in a real headless Chromium.

Needs the ``examples`` extra (flask, playwright) and Debian's ``chromium`` (Playwright's own
browser download does not work here, so it drives the system one). Without them the tests
skip with the reason on a laptop, and fail under ``CI=true``. A screenshot of every page is
saved under ``$ACCOUNT_LIFECYCLE_ARTIFACTS/webapp/<test>/`` (else the test's ``tmp_path``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, unavailable

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "webapp" / "app.py"
SMRTPHONE_ACKS = ("unported_numbers_lost", "data_permanently_deleted", "no_credit_refund")

pytestmark = pytest.mark.slow


def load_app_module() -> Any:
    if importlib.util.find_spec("flask") is None:
        unavailable("flask is not installed: pip install -e '.[examples]'")
    spec = importlib.util.spec_from_file_location("webapp_example", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    """The app on 127.0.0.1 at a free port, served from a thread; its SQLite files in tmp_path."""
    from werkzeug.serving import make_server

    app = load_app_module().create_app(tmp_path / "accounts.db")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="webapp", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["account_lifecycle_demo"].close()


class Browser:
    """One page in a fresh Chromium profile, saving a numbered screenshot of each page."""

    def __init__(self, page: Any, base_url: str, shots: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.shots = shots
        self.taken: list[Path] = []

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def shot(self, name: str) -> None:
        path = self.shots / f"{len(self.taken) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)

    def sign_in(self, role: str) -> None:
        with self.page.expect_navigation():
            self.page.select_option("#role", role)

    def click(self, selector: str) -> None:
        with self.page.expect_navigation():
            self.page.click(selector)

    def state(self) -> str:
        return str(self.page.inner_text("#state"))

    def alert(self) -> str:
        return str(self.page.inner_text("[role=alert]"))

    def status(self) -> str:
        return " ".join(self.page.locator("[role=status]").all_inner_texts())

    def post(self, path: str) -> str:
        """POST as the signed-in person without a button, as a hand-made request would."""
        response = self.page.request.post(self.base_url + path)
        assert response.ok, response.status
        return str(response.text())


@pytest.fixture
def browser(
    playwright: Any, base_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Browser]:
    root = Path(os.environ.get("ACCOUNT_LIFECYCLE_ARTIFACTS") or tmp_path)
    shots = root / "webapp" / re.sub(r"[^\w.-]+", "_", request.node.name)
    shots.mkdir(parents=True, exist_ok=True)
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1100, "height": 850},
    )
    try:
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(15_000)
        yield Browser(page, base_url, shots)
    finally:
        context.close()


def test_smrtphone_cancel_flow(browser: Browser) -> None:
    """Owner: survey (a meeting, then cancel), wrong token, numbers still porting, then the receipt."""
    b, page = browser, browser.page
    b.goto("/smrtphone")
    assert b.state() == "active"
    b.shot("smrtphone-billing")

    b.click("text=Cancel subscription")
    assert b.state() == "surveyed"
    assert page.locator("input[name=outcome]").count() == 3
    assert page.locator("#skip-survey").count() == 0  # smrtPhone's survey is required
    b.shot("smrtphone-survey")
    page.check("input[value=book_meeting]")
    b.click("#survey button[type=submit]")
    assert b.state() == "active"
    assert "meeting request was recorded" in b.status()

    b.click("text=Cancel subscription")
    page.check("input[value=cancel]")
    page.select_option("select[name=reason]", "switching_provider")
    b.click("#survey button[type=submit]")
    assert b.state() == "pending_confirm"
    for ack in SMRTPHONE_ACKS:
        page.check(f"input[value={ack}]")
    page.fill("#token", "confirm")
    b.shot("smrtphone-confirm")
    b.click("#confirm-button")
    assert b.state() == "pending_confirm"
    assert "That is not CONFIRM. Type CONFIRM exactly as shown" in b.alert()
    assert "you typed 'confirm'" in b.alert()
    assert all(page.is_checked(f"input[value={ack}]") for ack in SMRTPHONE_ACKS)
    b.shot("smrtphone-wrong-token")

    page.fill("#token", "CONFIRM")
    b.click("#confirm-button")
    assert b.state() == "pending_confirm"
    assert "still being ported out: +1 555 0100" in b.alert()
    b.shot("smrtphone-numbers-pending")

    b.click("text=Phone numbers and port-outs")
    b.shot("smrtphone-port-outs")
    b.click("[aria-label='toggle +1 555 0100']")
    assert "+1 555 0100: port-out complete." in b.status()
    b.click("text=Back to billing")

    for ack in SMRTPHONE_ACKS:
        page.check(f"input[value={ack}]")
    page.fill("#token", "CONFIRM")
    b.click("#confirm-button")
    assert b.state() == "purged"
    receipt = page.inner_text("#receipt")
    assert "Never touched: crm_contacts, crm_logs." in receipt
    assert re.search(r"call_recordings\s+120\s+30 Nov 2026, 09:00 UTC", receipt), receipt
    b.shot("smrtphone-receipt")

    downloaded = json.loads(page.request.get(b.base_url + "/smrtphone/receipt.json").text())
    assert [e["category"] for e in downloaded["erased"]] == [
        "agents",
        "call_flows",
        "billing_history",
        "call_recordings",
        "phone_numbers",
    ]
    assert downloaded["kept"] == ["crm_contacts", "crm_logs"]


def test_allclients_restore_by_support_within_the_window(browser: Browser) -> None:
    """Owner skips the survey and confirms; the owner cannot restore, support can; later the
    window ends and the backups are purged too."""
    b, page = browser, browser.page
    b.goto("/allclients")
    b.click("text=Cancel & Permanently Delete Your Account")
    assert b.state() == "surveyed"
    b.shot("allclients-survey")
    b.click("#skip-survey")
    assert b.state() == "pending_confirm"
    assert page.locator("#token").count() == 0  # a plain confirm, no token to type
    b.shot("allclients-confirm")
    b.click("#confirm-button")
    assert b.state() == "restorable"
    assert b.page.inner_text("#restorable-until") == "28 Feb 2027, 09:00 UTC"  # clamped to month end

    assert page.locator("#restore-button").count() == 0
    assert "cases@allclients.com" in page.inner_text("#how-to-restore")
    b.shot("allclients-restorable-owner")
    refused = b.post("/allclients/restore")
    assert "Only support can restore this account." in refused
    b.goto("/allclients")
    assert b.state() == "restorable"

    b.sign_in("support")
    b.shot("allclients-restorable-support")
    b.click("#restore-button")
    assert b.state() == "active"
    assert "The account is restored from its backups." in b.status()
    b.shot("allclients-restored")

    b.sign_in("owner")
    b.click("text=Cancel & Permanently Delete Your Account")
    b.click("#skip-survey")
    b.click("#confirm-button")
    assert b.state() == "restorable"
    b.click("text=Jump 3 months")
    assert "The nightly sweep purged ac-1 (AllClients)." in b.status()
    assert b.state() == "purged"
    assert re.search(r"backups\s+4\s+", page.inner_text("#receipt"))
    b.shot("allclients-purged")


@pytest.mark.parametrize(
    ("product", "button"),
    [("smrtphone", "Cancel subscription"), ("allclients", "Cancel & Permanently Delete Your Account")],
)
def test_a_team_member_cannot_cancel(browser: Browser, product: str, button: str) -> None:
    """A member sees no cancel button, and a hand-made request is refused with a message."""
    b, page = browser, browser.page
    b.goto(f"/{product}")
    b.sign_in("member")

    assert page.locator(f"text={button}").count() == 0
    assert page.inner_text("#cannot-cancel") == "Only the account owner can cancel this account."
    b.shot(f"{product}-member")
    refused = b.post(f"/{product}/cancel")
    assert "Only the account owner can cancel this account." in refused
    b.goto(f"/{product}")
    assert b.state() == "active"


# -- the same app without a browser: what a page cannot easily show -------------------------------


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    app = load_app_module().create_app(tmp_path / "accounts.db")
    try:
        yield app.test_client()
    finally:
        app.extensions["account_lifecycle_demo"].close()


def confirm_form(client: Any, product: str) -> dict[str, str]:
    """The hidden fields of the confirm form as the page renders them now."""
    html = client.get(f"/{product}").get_data(as_text=True)
    return dict(
        re.findall(r'<input type="hidden" name="(request_id|idempotency_key)" value="([^"]*)">', html)
    )


def test_a_confirm_form_from_a_withdrawn_request_is_refused(client: Any) -> None:
    """A confirm page left open across a withdraw and a new request does not confirm the new one."""
    client.post("/allclients/cancel")
    client.post("/allclients/skip-survey")
    stale = confirm_form(client, "allclients")
    client.post("/allclients/withdraw")
    client.post("/allclients/cancel")
    client.post("/allclients/skip-survey")

    page = client.post("/allclients/confirm", data=stale, follow_redirects=True).get_data(as_text=True)

    assert "This page was out of date, so nothing was changed." in page
    assert '<span class="state" id="state">pending_confirm</span>' in page


def test_submitting_the_same_confirm_form_twice_is_harmless(client: Any) -> None:
    """A double click sends the same idempotency key: the second submit changes nothing."""
    client.post("/allclients/cancel")
    client.post("/allclients/skip-survey")
    form = confirm_form(client, "allclients")

    first = client.post("/allclients/confirm", data=form, follow_redirects=True).get_data(as_text=True)
    second = client.post("/allclients/confirm", data=form, follow_redirects=True).get_data(as_text=True)

    assert '<span class="state" id="state">restorable</span>' in first
    assert '<span class="state" id="state">restorable</span>' in second
    assert 'role="alert"' not in second
    version = re.compile(r"&middot; version (\d+)</span>")
    assert version.findall(second) == version.findall(first)
    assert len(version.findall(first)) == 1
