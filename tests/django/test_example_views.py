"""The example site's "close my account" view (examples/django_site/crm/views.py) through
Django's test client: the confirm runs inside the view's ``transaction.atomic()`` with the
customer's history note, so its purge runs once that transaction commits, and the page shows
the account as it is then (restorable, its data erased, the note too)."""

from __future__ import annotations

from typing import Any

from conftest import open_customer
from crm.models import Contact, Item
from django.test import Client

from account_lifecycle import State


def test_the_confirm_page_shows_the_account_erased_after_the_views_commit(lc: Any) -> None:
    user, account_id = open_customer(lc)
    client = Client()
    client.force_login(user)

    for step, state in (("request", "surveyed"), ("skip-survey", "pending_confirm")):
        page = client.post(f"/cancel/{step}/")
        assert page.status_code == 200
        assert f'<strong id="state">{state}</strong>' in page.content.decode()
    assert Item.objects.filter(account_id=account_id, text__startswith="customer: ").count() == 2

    page = client.post("/cancel/confirm/")

    assert page.status_code == 200
    assert '<strong id="state">restorable</strong>' in page.content.decode()
    assert lc.get(account_id).state is State.RESTORABLE
    assert Contact.objects.filter(account_id=account_id).count() == 0
    # the view's own note, committed with the confirm, was erased after the commit too
    assert Item.objects.filter(account_id=account_id, kind="history").count() == 0
    assert Item.objects.filter(account_id=account_id, kind="backups").count() == 1  # at expiry
