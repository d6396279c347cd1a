"""A FastAPI service on async SQLAlchemy and PostgreSQL: sign-up opens the account in the same
transaction as the user's row, the owner closes it, and a durable outbox listener e-mails the
owner (a fake mailer writing each message to a table) once the closure is committed.

    uvicorn --factory 'app:create_app' (ACCOUNT_LIFECYCLE_EXAMPLE_URL=postgresql+psycopg://...)

Connections per process, at most ``POOL`` (4), on the one async engine that the requests and
the outbox relay's task share (``max_overflow=0``, so the count never grows under load; a
request waits for a free connection instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Form
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from account_lifecycle import (
    AccountExists,
    Action,
    Actor,
    AuditEvent,
    IdentityKey,
    IdentityKeys,
    LifecycleError,
    PurgeResult,
    policies,
)
from account_lifecycle.adapters.sqlalchemy import AsyncSQLAlchemyStore
from account_lifecycle.aio import AsyncLifecycle

#: Connections of the async engine: the requests' and the outbox relay's.
POOL = 4
APPLICATION_NAME = "account_lifecycle_fastapi_example"
POLICY = policies.ALLCLIENTS


def host_tables(schema: str | None) -> tuple[MetaData, Table, Table]:
    """The host's own tables: its users, and the e-mails its fake mailer "sent"."""
    md = MetaData(schema=schema)
    users = Table("users", md, Column("id", Text, primary_key=True), Column("email", Text, unique=True))
    mail = Table(
        "sent_mail",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event", Text, nullable=False, unique=True),  # account:seq: a repeat is refused
        Column("recipient", Text, nullable=False),
        Column("subject", Text, nullable=False),
        Column("sent_at", DateTime(timezone=True), server_default=func.now()),
    )
    return md, users, mail


class Eraser:
    """Erases one category of the host's data for an account (nothing to erase in this demo)."""

    def __init__(self, category: str) -> None:
        self.category = category

    def purge(self, account_id: str, context: object) -> PurgeResult:
        return PurgeResult(items=0)


def page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}"
        '<p><a href="/">sign up</a> · <a href="/mail">sent mail</a></p></body></html>'
    )


def create_app(url: str | None = None, *, schema: str | None = None, relay_every: float = 0.2) -> FastAPI:
    """The app on the PostgreSQL database *url* (``postgresql+psycopg://...``), its tables and
    the library's in *schema*; the relay feeds the mailer every *relay_every* seconds."""
    url = url or os.environ.get(
        "ACCOUNT_LIFECYCLE_EXAMPLE_URL", "postgresql+psycopg://postgres@127.0.0.1/test"
    )
    connect_args = {"application_name": APPLICATION_NAME}
    engine = create_async_engine(url, pool_size=POOL, max_overflow=0, connect_args=connect_args)
    md, users, mail = host_tables(schema)
    keys = IdentityKeys(IdentityKey("k1", bytes.fromhex(os.environ.get("EXAMPLE_IDENTITY_KEY", "5e" * 32))))
    store = AsyncSQLAlchemyStore(engine, schema=schema)
    erasers = [Eraser(c.name) for c in POLICY.purge.categories]

    async def mailer(event: AuditEvent) -> None:
        """The durable listener: an e-mail to the owner once a closure is committed. The relay
        delivers each event at least once: the message is keyed by its event."""
        if event.action != Action.CONFIRM:
            return
        user = event.account_id.removeprefix("acct-")
        message = {"event": f"{event.account_id}:{event.seq}", "recipient": user}
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(mail).values(**message, subject="Your account is closed"))
        except IntegrityError:
            return  # delivered before (the relay delivers at least once): sent once all the same

    lc = AsyncLifecycle(
        POLICY, store=store, purgers=erasers, identity_keys=keys, outbox_listeners={"mailer": mailer}
    )

    async def relay_loop() -> None:
        while True:
            await asyncio.sleep(relay_every)
            try:
                await lc.relay()
            except LifecycleError:  # the store was unavailable: the next round retries
                continue

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.migrate()
        async with engine.begin() as conn:
            await conn.run_sync(md.create_all)
        relay = asyncio.create_task(relay_loop(), name="outbox-relay")
        try:
            yield
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
            await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.state.lifecycle = lc
    app.state.engines = (engine,)

    @app.get("/", response_class=HTMLResponse)
    async def home() -> HTMLResponse:
        return page(
            "Sign up",
            '<form method=post action="/signup"><label>User id <input id=user name=user></label> '
            "<label>E-mail <input id=email name=email type=email></label> "
            "<button id=signup type=submit>Sign up</button></form>",
        )

    @app.post("/signup", response_model=None)
    async def signup(user: str = Form(...), email: str = Form(...)) -> Any:
        async with AsyncSession(engine) as session:
            try:
                await session.execute(insert(users).values(id=user, email=email))
                await lc.using(store.bound(session)).open(f"acct-{user}", owner=user, identity=email)
            except (IntegrityError, AccountExists, ValueError) as exc:
                await session.rollback()  # neither the user nor the account
                why = "that e-mail or user id is taken" if not isinstance(exc, ValueError) else str(exc)
                return page("Sign up refused", f"<p role=alert>{html.escape(why)}</p>")
            await session.commit()  # both
        return RedirectResponse(f"/account/{user}", status_code=303)

    @app.get("/account/{user}", response_class=HTMLResponse)
    async def account(user: str) -> HTMLResponse:
        try:
            record = await lc.get(f"acct-{user}")
            allowed = await lc.allowed_actions(f"acct-{user}", Actor.user(user))
        except LifecycleError as exc:
            return page("No such account", f"<p role=alert>{html.escape(type(exc).__name__)}</p>")
        buttons = "".join(
            f'<form method=post action="/account/{html.escape(user)}/{a.value}">'
            f'<button id="{a.value}" type=submit>{a.value.replace("_", " ")}</button></form>'
            for a in (Action.REQUEST_CANCELLATION, Action.SKIP_SURVEY, Action.CONFIRM, Action.WITHDRAW)
            if a in allowed
        )
        return page(f"Account of {user}", f"<p>State: <b id=state>{record.state.value}</b></p>{buttons}")

    @app.post("/account/{user}/{action}", response_model=None)
    async def act(user: str, action: str) -> Any:
        account_id, actor = f"acct-{user}", Actor.user(user)
        commands = {
            "request_cancellation": lc.request_cancellation,
            "skip_survey": lc.skip_survey,
            "confirm": lc.confirm,
            "withdraw": lc.withdraw,
        }
        command = commands.get(action)
        if command is None:
            return page("Unknown action", "<p role=alert>unknown action</p>")
        try:
            await command(account_id, actor)
        except LifecycleError as exc:
            return page("Refused", f"<p role=alert>{html.escape(type(exc).__name__)}</p>")
        return RedirectResponse(f"/account/{user}", status_code=303)

    @app.get("/mail", response_class=HTMLResponse)
    async def sent_mail() -> HTMLResponse:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(mail.c.recipient, mail.c.subject).order_by(mail.c.id))).all()
        items = "".join(f"<li>to {html.escape(r[0])}: {html.escape(r[1])}</li>" for r in rows)
        return page("Sent mail", f"<ul id=mail>{items}</ul>")

    return app
