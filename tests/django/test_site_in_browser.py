"""The example Django project (examples/django_site) in a real headless Chromium: the AllClients
flow. The customer cancels through the site's pages, a support agent restores the account in the
admin, the customer cancels again, and ``lifecycle_sweep`` purges it once the recovery window has
ended; the agent then sees the purged account, its chain verified, and downloads its receipt.

Needs Playwright (extra ``examples``) and Debian's ``chromium``: without them the test skips with
the reason, and fails under ``CI=true``. Screenshots go to
``$ACCOUNT_LIFECYCLE_ARTIFACTS/django/`` (else the test's ``tmp_path``)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS
from crm.models import Contact, Item
from django.core.management import call_command

from account_lifecycle import State

pytestmark = pytest.mark.slow

PASSWORD = "demo-password"


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    """Playwright's sync API runs an event loop in this thread, which Django takes for an async
    context: the test's own ORM calls are synchronous, so Django is told they are safe."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def site(lc: Any) -> Iterator[str]:
    """The example project's WSGI app (with its static files) served from a thread on a free port,
    after ``seed_demo`` made the customer ann and the agent sam."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    call_command("seed_demo", password=PASSWORD, stdout=StringIO())

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(StaticFilesHandler(WSGIHandler()))
    thread = threading.Thread(target=server.serve_forever, name="django-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


class Person:
    """One person's browser context (its own cookies), saving numbered screenshots."""

    def __init__(self, context: Any, base: str, shots: Path, name: str) -> None:
        self.page = context.new_page()
        self.page.set_default_timeout(15_000)
        self.base = base
        self.shots = shots
        self.name = name

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def click(self, selector: str) -> None:
        with self.page.expect_navigation():
            self.page.click(selector)

    def shot(self, what: str) -> None:
        taken = len(list(self.shots.glob("*.png")))
        self.page.screenshot(path=str(self.shots / f"{taken + 1:02d}-{self.name}-{what}.png"), full_page=True)

    def sign_in(self, path: str, username: str) -> None:
        self.goto(path)
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", PASSWORD)
        self.click("[type=submit]")

    def state(self) -> str:
        return str(self.page.inner_text("#state"))

    def cancel(self) -> None:
        self.click("#cancel")
        assert self.state() == "surveyed"
        self.click("#skip")
        assert self.state() == "pending_confirm"
        self.click("#confirm")


@pytest.fixture
def browser(playwright: Any, tmp_path: Path) -> Iterator[Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


def test_allclients_flow_customer_page_admin_restore_and_sweep(
    browser: Any, site: str, lc: Any, clock: Any, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("ACCOUNT_LIFECYCLE_ARTIFACTS") or tmp_path) / "django"
    shots.mkdir(parents=True, exist_ok=True)
    ann = Person(browser.new_context(), site, shots, "customer")
    sam = Person(browser.new_context(accept_downloads=True), site, shots, "support")
    account_id = lc.store.account_ids()[0]

    # the customer closes the account through the site's pages
    ann.sign_in("/accounts/login/", "ann")
    assert ann.state() == "active"
    ann.shot("account")
    ann.cancel()
    assert ann.state() == "restorable"
    assert "Support can restore it until 2027-03-01" in ann.page.inner_text("#restorable")
    ann.shot("cancelled")
    assert Contact.objects.filter(account_id=account_id).count() == 0  # erased at cancel
    assert Item.objects.filter(account_id=account_id, kind="backups").count() == 1  # kept until expiry

    # support restores it in the admin, as Actor.support, through the admin action
    sam.sign_in("/admin/login/?next=/admin/", "sam")
    sam.goto("/admin/account_lifecycle/accountrow/?state__exact=restorable")
    sam.shot("restorable-accounts")
    sam.page.check(f"input[name=_selected_action][value={account_id}]")
    sam.page.select_option("select[name=action]", "restore_accounts")
    sam.click("button[name=index]")
    assert "Restored 1 account(s)." in sam.page.inner_text(".messagelist")
    sam.shot("restored")
    assert lc.get(account_id).state is State.ACTIVE
    assert str(lc.history(account_id)[-1].actor).startswith("support:staff-")

    # the customer sees it back, and closes it again
    ann.goto("/")
    assert ann.state() == "active"
    ann.cancel()
    assert ann.state() == "restorable"

    # the window ends; the worker's sweep purges it
    clock.advance(timedelta(days=93))
    out = StringIO()
    call_command("lifecycle_sweep", stdout=out)
    assert out.getvalue().startswith("swept: 1 purged, 0 restorable, 0 failed\n")
    ann.goto("/")
    assert ann.state() == "purged"
    ann.shot("purged")

    # support sees the purged account, its chain verified, and downloads the receipt
    sam.goto(f"/admin/account_lifecycle/accountrow/{account_id}/change/")
    assert "Chain verified" in sam.page.inner_text("#chain")
    sam.shot("purged-account")
    with sam.page.expect_download() as download:
        sam.page.click("#receipt")
    receipt = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert receipt["account_id"] == account_id
    assert "backups" in {e["category"] for e in receipt["erased"]}
    assert Item.objects.filter(account_id=account_id).count() == 0
