"""The customer's pages: the account, and "close my account" in three steps.

Each step runs the lifecycle command inside ``transaction.atomic()`` together with the host's
own write (a line in the account's history), so both commit or neither does."""

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_POST

from account_lifecycle import Action, Actor, LifecycleError, SurveyOutcome
from account_lifecycle.contrib.django import lifecycle
from crm.models import Item


def account_of(user):
    """The account a signed-in customer owns."""
    return f"acct-{user.pk}"


@login_required
def account(request):
    lc = lifecycle()
    account_id = account_of(request.user)
    record = lc.get(account_id)
    actions = lc.allowed_actions(account_id, Actor.user(str(request.user.pk)))
    return render(
        request,
        "crm/account.html",
        {
            "record": record,
            "can_cancel": Action.REQUEST_CANCELLATION in actions,
            "error": request.GET.get("error"),
        },
    )


@login_required
@require_POST
def cancel(request, step):
    lc = lifecycle()
    account_id = account_of(request.user)
    actor = Actor.user(str(request.user.pk))
    commands = {
        "request": lambda: lc.request_cancellation(account_id, actor),
        "skip-survey": lambda: lc.skip_survey(account_id, actor),
        "keep": lambda: lc.submit_survey(account_id, actor, SurveyOutcome.KEEP_ACCOUNT),
        "confirm": lambda: lc.confirm(account_id, actor),
        "withdraw": lambda: lc.withdraw(account_id, actor),
    }
    if step not in commands:
        raise Http404("no such step")
    try:
        with transaction.atomic():
            # the note first: confirm's purge, run once this transaction has committed (on_commit),
            # erases the history too
            Item.objects.create(account_id=account_id, kind="history", text=f"customer: {step}")
            commands[step]()
    except LifecycleError as exc:
        return render(
            request, "crm/account.html", {"record": lc.get(account_id), "error": str(exc)}, status=409
        )
    # read after the commit: a confirm's purge ran then, so the account is restorable now
    return render(request, "crm/account.html", {"record": lc.get(account_id)})
