"""A small server-rendered web app embedding account_lifecycle: the whole cancel flow a
customer sees, for both built-in policies.

Run: python examples/webapp/app.py   (needs the ``examples`` extra: pip install -e '.[examples]')
then open http://127.0.0.1:5000/.

Signing in is simulated: the page lets you choose who you are (the owner, a team member or
a support agent). Authenticating people is the host application's job; the library only
decides what the person's relation to the account allows.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from flask import Flask, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from account_lifecycle import (
    AccountExists,
    AccountNotFound,
    Action,
    Actor,
    AuditEvent,
    ConcurrentUpdate,
    Duration,
    IdentityKey,
    IdentityKeys,
    InvalidTransition,
    Lifecycle,
    LifecycleError,
    ManualClock,
    MissingAcknowledgements,
    NotPermitted,
    Policy,
    PrerequisitesPending,
    PurgeContext,
    PurgeResult,
    RecoveryWindowExpired,
    SQLiteStore,
    State,
    SurveyOutcome,
    WrongConfirmationToken,
    policies,
)

__all__ = ["PEOPLE", "PRODUCTS", "create_app", "friendly"]

START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
# Identities are stored as keyed digests. The demo's store lives as long as the process, so a
# fresh random key will do; a real host loads its key from its secret store, never from code.
IDENTITY_KEYS = IdentityKeys(IdentityKey.generate("webapp"))


@attrs.frozen
class Person:
    """Someone the demo can sign in as. A real host gets this from its own login."""

    role: str
    name: str
    actor: Actor


PEOPLE = {
    "owner": Person("owner", "Olivia, the account owner", Actor.user("olivia")),
    "member": Person("member", "Max, a team member", Actor.user("max")),
    "support": Person("support", "Sam, a support agent", Actor.support("sam")),
}


@attrs.frozen
class Product:
    """How one built-in policy is presented: the words its help-center article uses."""

    key: str
    title: str
    prefix: str  # of its account ids
    policy: Policy
    cancel_button: str
    outcomes: Mapping[SurveyOutcome, str]
    data: Mapping[str, int]  # items per data category of a fresh demo account


PRODUCTS = {
    "smrtphone": Product(
        key="smrtphone",
        title="smrtPhone",
        prefix="sp",
        policy=policies.SMRTPHONE,
        cancel_button="Cancel subscription",
        outcomes={
            SurveyOutcome.KEEP_ACCOUNT: "I changed my mind: keep my smrtPhone account",
            SurveyOutcome.BOOK_MEETING: "Book a meeting with the Customer Success Team first",
            SurveyOutcome.CANCEL: "Cancel my account",
        },
        data={
            "agents": 3,
            "call_flows": 2,
            "billing_history": 14,
            "call_recordings": 120,
            "phone_numbers": 2,
        },
    ),
    "allclients": Product(
        key="allclients",
        title="AllClients",
        prefix="ac",
        policy=policies.ALLCLIENTS,
        cancel_button="Cancel & Permanently Delete Your Account",
        outcomes={
            SurveyOutcome.KEEP_ACCOUNT: "I changed my mind: keep my account",
            SurveyOutcome.BOOK_MEETING: "Contact support (cases@allclients.com) about my issue instead",
            SurveyOutcome.CANCEL: "Close my account",
        },
        data={
            "contacts": 250,
            "appointments": 31,
            "todos": 12,
            "email_templates": 8,
            "autoresponders": 3,
            "history": 900,
            "backups": 4,
        },
    ),
}

ACTION_WORDS = {
    Action.REQUEST_CANCELLATION: "cancel this account",
    Action.SUBMIT_SURVEY: "answer the cancellation survey",
    Action.SKIP_SURVEY: "skip the survey",
    Action.WITHDRAW: "stop the cancellation",
    Action.CONFIRM: "confirm the cancellation",
    Action.RESTORE: "restore this account",
}
REASONS = {
    "too_expensive": "It costs too much",
    "missing_features": "It lacks something I need",
    "switching_provider": "I am switching to another provider",
    "closing_business": "I am closing my business",
}
ROLE_WORDS = {"owner": "the account owner", "member": "a team member", "support": "support"}


class DemoData:
    """Stands in for the host's own tables: items per category per account."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], int] = {}
        self._backups: dict[tuple[str, str], int] = {}

    def fill(self, account_id: str, items: Mapping[str, int]) -> None:
        with self._lock:
            for category, count in items.items():
                self._items[account_id, category] = count
                self._backups[account_id, category] = count

    def count(self, account_id: str, category: str) -> int:
        with self._lock:
            return self._items.get((account_id, category), 0)

    def erase(self, account_id: str, category: str) -> int:
        """Delete a category's items; erasing twice deletes nothing more (purgers are idempotent)."""
        with self._lock:
            return self._items.pop((account_id, category), 0)

    def restore_from_backups(self, account_id: str) -> None:
        with self._lock:
            for (account, category), count in self._backups.items():
                if account == account_id:
                    self._items[account, category] = count


@attrs.frozen
class Eraser:
    """One purger per data category, as a host registers them."""

    category: str
    data: DemoData

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        items = self.data.erase(account_id, self.category)
        return PurgeResult(items=items, detail=f"deleted {items} {self.category}")


class Demo:
    """Everything the app keeps: one lifecycle per product on its own SQLite file, one clock."""

    def __init__(self, db_path: Path) -> None:
        self.clock = ManualClock(START)
        self.data = DemoData()
        self.port_outs: dict[str, dict[str, bool]] = {}  # account -> number -> still porting out?
        self.current: dict[str, str] = {}
        self.lifecycles: dict[str, Lifecycle] = {}
        self.stores: list[SQLiteStore] = []
        self._opened: dict[str, int] = {}
        self._lock = threading.Lock()
        for key, product in PRODUCTS.items():
            store = SQLiteStore(db_path.with_name(f"{db_path.stem}-{key}{db_path.suffix or '.db'}"))
            self.stores.append(store)
            checks = {"port_outs": self.numbers_still_porting} if product.policy.prerequisites else {}
            self.lifecycles[key] = Lifecycle(
                product.policy,
                store=store,
                purgers=[Eraser(c.name, self.data) for c in product.policy.purge.categories],
                prerequisites=checks,
                clock=self.clock,
                listeners=[self.on_event],
                identity_keys=IDENTITY_KEYS,
            )
            self.open_fresh(key)

    def open_fresh(self, key: str) -> str:
        with self._lock:
            self._opened[key] = self._opened.get(key, 0) + 1
            account_id = f"{PRODUCTS[key].prefix}-{self._opened[key]}"
        self.lifecycles[key].open(
            account_id, owner="olivia", members=["max"], identity=f"olivia@{key}.example"
        )
        self.data.fill(account_id, PRODUCTS[key].data)
        if key == "smrtphone":
            self.port_outs[account_id] = {"+1 555 0100": True, "+1 555 0101": False}
        self.current[key] = account_id
        return account_id

    def numbers_still_porting(self, account_id: str) -> list[str]:
        """The host's prerequisite check: numbers whose port-out is not complete yet."""
        return [number for number, pending in self.port_outs.get(account_id, {}).items() if pending]

    def on_event(self, event: AuditEvent) -> None:
        """A listener: bring the data back from backups when an account is restored."""
        if event.action == Action.RESTORE:
            self.data.restore_from_backups(event.account_id)

    def close(self) -> None:
        for store in self.stores:
            store.close()


def friendly(exc: LifecycleError, product: Product) -> str:
    """The sentence a customer sees for each refusal the library can give."""
    if isinstance(exc, NotPermitted):
        allowed = sorted(product.policy.permissions.get(exc.action, ()))
        doing = ACTION_WORDS.get(exc.action, str(exc.action))
        if not allowed:
            return f"Nobody can {doing}: {product.title} does not allow it."
        who = " or ".join(ROLE_WORDS.get(r, r) for r in allowed)
        extra = " E-mail support and they will do it for you." if exc.action is Action.RESTORE else ""
        return f"Only {who} can {doing}.{extra}"
    if isinstance(exc, WrongConfirmationToken):
        return (
            f"That is not {exc.expected}. Type {exc.expected} exactly as shown, in capital letters, "
            f"with no spaces (you typed {exc.given or 'nothing'!r})."
        )
    if isinstance(exc, MissingAcknowledgements):
        texts = {a.id: a.text for a in product.policy.confirmation.acknowledgements}
        return "Please tick every box before you confirm: " + " ".join(texts[m] for m in exc.missing)
    if isinstance(exc, PrerequisitesPending):
        numbers = ", ".join(exc.pending.get("port_outs", ()))
        return (
            f"These phone numbers are still being ported out: {numbers}. All number transfers must be "
            "fully complete before you cancel, or the numbers are lost."
        )
    if isinstance(exc, RecoveryWindowExpired):
        return f"This account could be restored until {when(exc.restorable_until)}; that time has passed."
    if isinstance(exc, InvalidTransition):
        return "This page was out of date, so nothing was changed. Here is the account as it is now."
    if isinstance(exc, ConcurrentUpdate):
        return "Someone else changed this account at the same moment, so nothing was changed. Try again."
    if isinstance(exc, AccountExists):
        return "That e-mail address still belongs to an account that is not purged yet."
    return str(exc)


def when(moment: object) -> str:
    return moment.strftime("%d %b %Y, %H:%M UTC") if isinstance(moment, datetime) else "never"


def create_app(db_path: str | Path) -> Flask:
    """The demo app, keeping its accounts in SQLite files named after *db_path*."""
    app = Flask(__name__, root_path=str(Path(__file__).resolve().parent))
    app.secret_key = secrets.token_hex(16)
    demo = Demo(Path(db_path))
    app.extensions["account_lifecycle_demo"] = demo
    app.jinja_env.filters["when"] = when

    def person() -> Person:
        return PEOPLE[session.get("role", "owner")]

    def product_or_404(key: str) -> Product:
        if key not in PRODUCTS:
            abort(404)
        return PRODUCTS[key]

    @app.context_processor
    def everywhere() -> dict[str, Any]:
        return {
            "now": demo.clock.now(),
            "me": person(),
            "people": PEOPLE,
            "products": PRODUCTS,
            "reasons": REASONS,
        }

    @app.get("/")
    def index() -> str:
        accounts = {key: demo.lifecycles[key].get(demo.current[key]) for key in PRODUCTS}
        return render_template("index.html", accounts=accounts)

    @app.post("/sign-in")
    def sign_in() -> Response:
        role = request.form.get("role", "")
        if role not in PEOPLE:
            abort(400)
        session["role"] = role
        return redirect(request.form.get("next") or url_for("index"))

    @app.post("/clock")
    def advance_clock() -> Response:
        """Move the demo clock, then run the sweep a host would run on a schedule."""
        jump = request.form.get("jump", "")
        if jump not in ("1 day", "1 month", "3 months"):
            abort(400)
        demo.clock.set(Duration.parse(jump).add_to(demo.clock.now()))
        for key, lifecycle in demo.lifecycles.items():
            report = lifecycle.sweep()
            if report.purged:
                flash(f"The nightly sweep purged {', '.join(report.purged)} ({PRODUCTS[key].title}).", "info")
        flash(f"The clock jumped {jump} ahead.", "info")
        return redirect(request.form.get("next") or url_for("index"))

    @app.get("/<key>")
    def account(key: str) -> str:
        product = product_or_404(key)
        lifecycle = demo.lifecycles[key]
        account_id = demo.current[key]
        record = lifecycle.get(account_id)
        allowed = lifecycle.allowed_actions(account_id, person().actor)
        receipt = lifecycle.receipt(account_id) if record.state is State.PURGED else None
        return render_template(
            "account.html",
            product=product,
            record=record,
            allowed=allowed,
            receipt=receipt,
            receipt_json=receipt.to_json() if receipt else "",
            history=lifecycle.history(account_id),
            data={c: demo.data.count(account_id, c) for c in product.data},
            porting=demo.numbers_still_porting(account_id),
            ticked=session.pop("ticked", []),
            form_key=secrets.token_hex(8),
        )

    def command(key: str, run: Callable[[Lifecycle, str, Actor], object], success: str = "") -> Response:
        """Run one lifecycle command for the signed-in person; a refusal becomes a message."""
        product = product_or_404(key)
        try:
            run(demo.lifecycles[key], demo.current[key], person().actor)
        except LifecycleError as exc:
            flash(friendly(exc, product), "error")
        else:
            if success:
                flash(success, "info")
        return redirect(url_for("account", key=key))

    @app.post("/<key>/cancel")
    def cancel(key: str) -> Response:
        return command(key, lambda lc, acct, actor: lc.request_cancellation(acct, actor))

    @app.post("/<key>/survey")
    def survey(key: str) -> Response:
        product = product_or_404(key)
        try:
            outcome = SurveyOutcome(request.form.get("outcome", ""))
        except ValueError:
            flash("Please choose one of the answers.", "error")
            return redirect(url_for("account", key=key))
        if outcome not in product.policy.survey.outcomes:
            abort(400)
        # Answers are stored in the audit trail, which is never erased: offer choices, not free
        # text, so no personal data ends up there.
        reason = request.form.get("reason", "")
        answers = {"reason": reason} if reason in REASONS else None
        messages = {
            SurveyOutcome.KEEP_ACCOUNT: "We are glad you are staying. Your account is active.",
            SurveyOutcome.BOOK_MEETING: "A meeting request was recorded; our team will get in touch. "
            "Your account stays active.",
        }
        return command(
            key,
            lambda lc, acct, actor: lc.submit_survey(acct, actor, outcome, answers),
            messages.get(outcome, ""),
        )

    @app.post("/<key>/skip-survey")
    def skip_survey(key: str) -> Response:
        return command(key, lambda lc, acct, actor: lc.skip_survey(acct, actor))

    @app.post("/<key>/withdraw")
    def withdraw(key: str) -> Response:
        return command(key, lambda lc, acct, actor: lc.withdraw(acct, actor), "Cancellation stopped.")

    @app.post("/<key>/confirm")
    def confirm(key: str) -> Response:
        product = product_or_404(key)
        offered = {a.id for a in product.policy.confirmation.acknowledgements}
        ticked = [a for a in request.form.getlist("ack") if a in offered]
        session["ticked"] = ticked  # shown ticked again if the confirmation is refused
        token = request.form.get("token") if product.policy.confirmation.token is not None else None
        request_id = request.form.get("request_id") or None
        form_key = request.form.get("idempotency_key") or None
        response = command(
            key,
            lambda lc, acct, actor: lc.confirm(
                acct, actor, token, ticked, request_id=request_id, idempotency_key=form_key
            ),
        )
        if demo.lifecycles[key].get(demo.current[key]).state is not State.PENDING_CONFIRM:
            session.pop("ticked", None)
        return response

    @app.post("/<key>/restore")
    def restore(key: str) -> Response:
        return command(
            key, lambda lc, acct, actor: lc.restore(acct, actor), "The account is restored from its backups."
        )

    @app.post("/<key>/fresh")
    def fresh(key: str) -> Response:
        product = product_or_404(key)
        try:
            demo.open_fresh(key)
        except LifecycleError as exc:
            flash(friendly(exc, product), "error")
        return redirect(url_for("account", key=key))

    @app.get("/<key>/receipt.json")
    def receipt_json(key: str) -> Response:
        product_or_404(key)
        try:
            receipt = demo.lifecycles[key].receipt(demo.current[key])
        except (InvalidTransition, AccountNotFound):
            abort(404)
        return Response(receipt.to_json(), mimetype="application/json")

    @app.route("/smrtphone/numbers", methods=["GET", "POST"])
    def numbers() -> str | Response:
        """The host's own page: which numbers are still being ported out (toggle them for the demo)."""
        numbers = demo.port_outs.setdefault(demo.current["smrtphone"], {})
        if request.method == "POST":
            number = request.form.get("number", "")
            if number not in numbers:
                abort(400)
            numbers[number] = not numbers[number]
            state = "still porting out" if numbers[number] else "port-out complete"
            flash(f"{number}: {state}.", "info")
            return redirect(url_for("numbers"))
        return render_template("numbers.html", product=PRODUCTS["smrtphone"], numbers=numbers)

    @app.template_filter("pretty_json")
    def pretty_json(value: Mapping[str, Any]) -> str:
        return json.dumps(dict(value), sort_keys=True, default=str)

    return app


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Path(tmp) / "accounts.db")
        try:
            app.run(host="127.0.0.1", port=5000)
        finally:
            app.extensions["account_lifecycle_demo"].close()


if __name__ == "__main__":
    main()
