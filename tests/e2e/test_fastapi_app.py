"""The FastAPI example (examples/fastapi_app): async SQLAlchemy on PostgreSQL, clicked through in
headless Chromium. A sign-up opens the account in the user's transaction (a refused one leaves
neither), the owner closes the account, and the outbox listener's e-mail appears once the
closure is committed. The connections the process opens stay within its documented budget."""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, unavailable
from sqlalchemy import create_engine, text
from sqlalchemy_support import pg_url

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "fastapi_app" / "app.py"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def load_app_module() -> Any:
    for needed in ("fastapi", "uvicorn", "multipart"):
        if importlib.util.find_spec(needed) is None:
            unavailable(f"{needed} is not installed: pip install -e '.[examples]'")
    spec = importlib.util.spec_from_file_location("fastapi_example", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def served() -> Iterator[tuple[str, str, str, Any]]:
    """``(base_url, database_url, schema, module)``: the app on a free port, in a thread."""
    import pg
    import uvicorn

    module = load_app_module()
    with pg.throwaway_schema() as (dsn, schema):
        url = pg_url(dsn)
        setup = create_engine(url)
        with setup.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        setup.dispose()
        app = module.create_app(url, schema=schema, relay_every=0.05)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, name="fastapi-example", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the app did not start"
            assert thread.is_alive(), "the server thread died"
            threading.Event().wait(0.02)
        try:
            yield f"http://127.0.0.1:{port}", url, schema, module
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def scalar(url: str, statement: str) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(statement)).scalar_one()
    finally:
        engine.dispose()


def test_sign_up_close_and_get_the_mail(
    playwright: Any, served: tuple[str, str, str, Any], tmp_path: Path
) -> None:
    base, url, schema, module = served
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    try:
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(15_000)

        def sign_up(user: str, email: str) -> None:
            page.goto(base + "/")
            page.fill("#user", user)
            page.fill("#email", email)
            with page.expect_navigation():
                page.click("#signup")

        sign_up("ann", "ann@example.com")
        assert page.inner_text("#state") == "active"

        sign_up("bob", "ann@example.com")  # the host's unique e-mail refuses: no account either
        assert "taken" in page.inner_text("[role=alert]")
        users = scalar(url, f'SELECT count(*) FROM "{schema}".users')
        accounts = scalar(url, f'SELECT count(*) FROM "{schema}".account_lifecycle_accounts')
        assert (users, accounts) == (1, 1)

        page.goto(base + "/account/ann")
        for button in ("request_cancellation", "skip_survey", "confirm"):
            with page.expect_navigation():
                page.click(f"#{button}")
        assert page.inner_text("#state") == "restorable"

        # the outbox listener sends the e-mail once the relay reads the committed confirm
        deadline = time.monotonic() + 30
        while (
            "to ann: Your account is closed" not in page.inner_text("#mail")
            if page.url.endswith("/mail")
            else True
        ):
            assert time.monotonic() < deadline, "the mail never came"
            page.goto(base + "/mail")
        assert page.locator("#mail li").count() == 1

        connections = scalar(
            url, f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{module.APPLICATION_NAME}'"
        )
        assert 1 <= connections <= module.POOL
    finally:
        context.close()
