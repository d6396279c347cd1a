"""The admin for support staff: accounts by state, the history with its chain verified, restore
and legal holds as actions through the lifecycle (as Actor.support), receipts as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import open_customer
from django.contrib.auth.models import Permission, User
from django.test import Client

from account_lifecycle import Actor, State
from account_lifecycle.contrib.django.models import EventRow

CHANGELIST = "/admin/account_lifecycle/accountrow/"


def staff(*codenames: str) -> Client:
    user = User.objects.create_user(f"agent-{len(codenames)}", password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="account_lifecycle", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    client.user = user  # type: ignore[attr-defined]
    return client


def cancelled(lc: Any) -> str:
    user, account_id = open_customer(lc)
    owner = Actor.user(str(user.pk))
    lc.request_cancellation(account_id, owner)
    lc.skip_survey(account_id, owner)
    lc.confirm(account_id, owner)
    return account_id


def act(client: Client, action: str, account_id: str, **extra: str) -> str:
    response = client.post(
        CHANGELIST, {"action": action, "_selected_action": [account_id], **extra}, follow=True
    )
    assert response.status_code == 200
    return response.content.decode()


def test_the_changelist_filters_accounts_by_state(lc: Any) -> None:
    """?state=restorable lists the cancelled account and not the open one."""
    restorable = cancelled(lc)
    _, active = open_customer(lc, "bob")
    client = staff("view_accountrow")

    page = client.get(CHANGELIST, {"state": "restorable"}).content.decode()

    assert f">{restorable}<" in page
    assert f">{active}<" not in page


def test_restore_goes_through_the_lifecycle_as_support(lc: Any) -> None:
    """The action restores the account; the audit event names the staff user as support."""
    account_id = cancelled(lc)
    client = staff("view_accountrow", "restore_account")

    page = act(client, "restore_accounts", account_id)

    assert "Restored 1 account(s)." in page
    assert lc.get(account_id).state is State.ACTIVE
    last = lc.history(account_id)[-1]
    assert (last.action, last.actor) == ("restore", Actor.support(f"staff-{client.user.pk}"))  # type: ignore[attr-defined]


def test_restore_is_offered_only_with_the_django_permission(lc: Any) -> None:
    """Without account_lifecycle.restore_account the action is neither listed nor run."""
    account_id = cancelled(lc)
    client = staff("view_accountrow")

    assert "restore_accounts" not in client.get(CHANGELIST).content.decode()
    act(client, "restore_accounts", account_id)
    assert lc.get(account_id).state is State.RESTORABLE


def test_a_restore_the_lifecycle_refuses_is_reported_and_changes_nothing(lc: Any) -> None:
    """Restoring an active account is an InvalidTransition: an error message, no event."""
    _, account_id = open_customer(lc)
    client = staff("view_accountrow", "restore_account")
    before = lc.history(account_id)

    page = act(client, "restore_accounts", account_id)

    assert f"Not restored: {account_id}" in page
    assert lc.history(account_id) == before


@pytest.fixture
def held_lc(sqlite_db: str, clock: Any) -> Iterator[Any]:
    """ALLCLIENTS with legal holds turned on (``[purge] on_hold = "wait"``), from the settings."""
    import attrs
    from django.conf import settings
    from django.test.utils import override_settings

    from account_lifecycle import policies
    from account_lifecycle.contrib.django import conf

    policy = attrs.evolve(policies.ALLCLIENTS, purge=attrs.evolve(policies.ALLCLIENTS.purge, on_hold="wait"))
    with override_settings(ACCOUNT_LIFECYCLE={**settings.ACCOUNT_LIFECYCLE, "POLICY": policy}):
        conf.reset()
        yield conf.lifecycle()
    conf.reset()


def test_a_hold_the_policy_does_not_offer_is_refused_and_changes_nothing(lc: Any) -> None:
    """ALLCLIENTS has no legal holds: the action reports the lifecycle's refusal."""
    _, account_id = open_customer(lc)
    client = staff("view_accountrow", "hold_account")
    before = lc.history(account_id)

    page = act(client, "place_hold", account_id, category="contacts", reason="case 2026-114")

    assert f"Not held: {account_id}: cannot place_hold from state active" in page
    assert lc.history(account_id) == before


def test_holds_are_placed_and_released_with_category_and_reason(held_lc: Any) -> None:
    """place_hold needs a reason (blank: refused, nothing written); with one, the category is
    held by the staff user as support; release_hold lifts it."""
    lc = held_lc
    _, account_id = open_customer(lc)
    client = staff("view_accountrow", "hold_account")

    page = act(client, "place_hold", account_id, category="contacts", reason="")
    assert f"Not held: {account_id}" in page
    assert lc.get(account_id).holds == {}

    page = act(client, "place_hold", account_id, category="contacts", reason="case 2026-114")
    assert "Held 1 account(s)." in page
    assert list(lc.get(account_id).holds) == ["contacts"]
    assert lc.get(account_id).holds["contacts"].by == f"support:staff-{client.user.pk}"  # type: ignore[attr-defined]
    assert f">{account_id}<" in client.get(CHANGELIST, {"has_holds__exact": "1"}).content.decode()
    assert f">{account_id}<" not in client.get(CHANGELIST, {"has_holds__exact": "0"}).content.decode()

    act(client, "release_hold", account_id, category="contacts")
    assert lc.get(account_id).holds == {}


def test_the_account_page_shows_the_history_with_the_chain_verified_or_broken(lc: Any) -> None:
    account_id = cancelled(lc)
    client = staff("view_accountrow")
    url = f"{CHANGELIST}{account_id}/change/"

    page = client.get(url).content.decode()
    assert f"Chain verified: {len(lc.history(account_id))} events" in page
    assert "skip_survey" in page

    row = EventRow.objects.get(account_id=account_id, seq=3)
    row.body = row.body.replace('"skip_survey"', '"withdraw"')
    row.save()
    assert "Chain broken at event 3" in client.get(url).content.decode()


def test_the_receipt_downloads_as_json_once_purged(lc: Any, clock: Any) -> None:
    account_id = cancelled(lc)
    client = staff("view_accountrow")
    url = f"{CHANGELIST}{account_id}/receipt.json"
    assert client.get(url).status_code == 404
    clock.advance(timedelta(days=93))
    lc.sweep()

    response = client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="receipt-{account_id}.json"'
    assert json.loads(response.content) == json.loads(lc.receipt(account_id).to_json())
    assert "receipt.json" in client.get(f"{CHANGELIST}{account_id}/change/").content.decode()


@pytest.mark.parametrize("method", ["add", "delete"])
def test_rows_are_never_added_or_deleted_in_the_admin(lc: Any, method: str) -> None:
    _, account_id = open_customer(lc)
    client = staff("view_accountrow", "restore_account", "hold_account")
    url = f"{CHANGELIST}add/" if method == "add" else f"{CHANGELIST}{account_id}/delete/"

    assert client.get(url).status_code == 403
