"""The admin for support staff: accounts by state with filters, each account's history with its
chain verified, restore and legal holds as admin actions, receipts downloadable as JSON.

Rows are never edited here: every change goes through the lifecycle, as ``Actor.support`` for
the staff user (``support_actor``), so the policy's permissions decide, and the change is an
audit event like any other. Django's permissions decide who sees the actions:
``account_lifecycle.restore_account`` and ``account_lifecycle.hold_account``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from account_lifecycle.contrib.django import conf, support_actor
from account_lifecycle.contrib.django.models import AccountRow
from account_lifecycle.errors import AccountNotFound, HistoryTampered, InvalidTransition, LifecycleError
from account_lifecycle.model import State

__all__ = ["AccountAdmin", "HoldActionForm"]


def _categories() -> list[tuple[str, str]]:
    try:
        policy = conf.settings().policy
    except LifecycleError:
        return [("", "---------")]
    return [("", "---------"), *((c.name, c.name) for c in policy.purge.categories)]


class HoldActionForm(ActionForm):
    """The action bar, with the category and reason a legal hold needs."""

    category = forms.ChoiceField(choices=_categories, required=False, label="Hold category")
    reason = forms.CharField(required=False, label="Reason", max_length=500)


@admin.register(AccountRow)
class AccountAdmin(admin.ModelAdmin):
    """Accounts by state, due time, holds and failed steps; read-only, changed through actions."""

    list_display = ("account_id", "state", "policy", "due_at", "has_holds", "has_failed_steps", "claim_owner")
    list_filter = ("state", "has_holds", "has_failed_steps", "policy")
    search_fields = ("=account_id",)
    ordering = ("account_id",)
    actions = ("restore_accounts", "place_hold", "release_hold")
    action_form = HoldActionForm
    fields = (
        "account_id",
        "state",
        "policy",
        "version",
        "due_at",
        "claim_owner",
        "claim_until",
        "record",
        "history",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Accounts are opened by the lifecycle, never here."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Rows change through the lifecycle's commands only (the actions)."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Accounts are purged by the lifecycle, never deleted here."""
        return False

    def has_restore_permission(self, request: HttpRequest) -> bool:
        """Whether the staff user may use the restore action (Django permission)."""
        return bool(request.user.has_perm("account_lifecycle.restore_account"))

    def has_hold_permission(self, request: HttpRequest) -> bool:
        """Whether the staff user may place and release legal holds (Django permission)."""
        return bool(request.user.has_perm("account_lifecycle.hold_account"))

    # -- the account's page --------------------------------------------------------------------

    @admin.display(description="Record")
    def record(self, obj: AccountRow) -> Any:
        """What the lifecycle holds: cancellation, window, purge progress, holds; and the receipt."""
        try:
            record = conf.lifecycle().get(obj.account_id)
        except LifecycleError as exc:
            return format_html('<span class="errornote">{}</span>', str(exc))
        purge = format_html_join(
            "",
            "<li>{}: {} ({} items, {} attempts)</li>",
            ((k, p.status, p.items, p.attempts) for k, p in record.purge.items()),
        )
        holds = format_html_join("", "<li>{}: {}</li>", ((k, h.by) for k, h in record.holds.items()))
        receipt = ""
        if record.state is State.PURGED:
            url = reverse("admin:account_lifecycle_accountrow_receipt", args=[obj.account_id])
            receipt = format_html(
                '<p><a id="receipt" href="{}" download>Download the erasure receipt (JSON)</a></p>', url
            )
        return format_html(
            "<p>cancelled at {}; restorable until {}</p><p>purge:</p><ul>{}</ul><p>holds:</p><ul>{}</ul>{}",
            record.cancelled_at or "-",
            record.restorable_until or "-",
            purge,
            holds,
            receipt,
        )

    @admin.display(description="History")
    def history(self, obj: AccountRow) -> Any:
        """The audit trail, and whether its hash chain verifies."""
        lc = conf.lifecycle()
        try:
            lc.verify_history(obj.account_id)
            chain = format_html(
                '<p id="chain" class="success">Chain verified: {} events</p>', obj.events.count()
            )
        except HistoryTampered as exc:
            chain = format_html(
                '<p id="chain" class="errornote">Chain broken at event {}: {}</p>', exc.seq, exc.reason
            )
        try:
            events = lc.history(obj.account_id)
        except HistoryTampered:
            return chain
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td><code>{}</code></td></tr>",
            ((e.seq, e.at, e.actor, e.action, e.from_state or "-", e.to_state, e.hash[:12]) for e in events),
        )
        return format_html(
            "{}<table><thead><tr><th>#</th><th>at</th><th>actor</th><th>action</th><th>state</th>"
            "<th>hash</th></tr></thead><tbody>{}</tbody></table>",
            chain,
            rows,
        )

    # -- actions -------------------------------------------------------------------------------

    def _each(self, request: HttpRequest, queryset: Any, verb: str, command: Any) -> None:
        done, refused = 0, []
        for account_id in queryset.values_list("account_id", flat=True):
            try:
                command(account_id)
            except (LifecycleError, ValueError) as exc:
                refused.append(f"{account_id}: {exc}")
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} account(s).", messages.SUCCESS)
        for line in refused:
            self.message_user(request, f"Not {verb.lower()}: {line}", messages.ERROR)

    @admin.action(description="Restore selected accounts (as support)", permissions=["restore"])
    def restore_accounts(self, request: HttpRequest, queryset: Any) -> None:
        """``Lifecycle.restore`` of each selected account, as ``Actor.support`` for the staff user."""
        lc, actor = conf.lifecycle(), support_actor(request.user)
        self._each(request, queryset, "Restored", lambda account_id: lc.restore(account_id, actor))

    @admin.action(description="Place a legal hold on the category", permissions=["hold"])
    def place_hold(self, request: HttpRequest, queryset: Any) -> None:
        """``Lifecycle.place_hold`` of the chosen category, with the reason typed in the bar."""
        lc, actor = conf.lifecycle(), support_actor(request.user)
        category, reason = request.POST.get("category", ""), request.POST.get("reason", "")
        self._each(
            request, queryset, "Held", lambda account_id: lc.place_hold(account_id, actor, category, reason)
        )

    @admin.action(description="Release the legal hold on the category", permissions=["hold"])
    def release_hold(self, request: HttpRequest, queryset: Any) -> None:
        """``Lifecycle.release_hold`` of the chosen category."""
        lc, actor = conf.lifecycle(), support_actor(request.user)
        category = request.POST.get("category", "")
        self._each(
            request, queryset, "Released", lambda account_id: lc.release_hold(account_id, actor, category)
        )

    # -- the receipt ---------------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        """The admin's URLs, with ``<account>/receipt.json``."""
        receipt = path(
            "<path:account_id>/receipt.json",
            self.admin_site.admin_view(self.receipt_view),
            name="account_lifecycle_accountrow_receipt",
        )
        return [receipt, *super().get_urls()]

    def receipt_view(self, request: HttpRequest, account_id: str) -> HttpResponse:
        """The erasure receipt of a purged account as a JSON download."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            receipt = conf.lifecycle().receipt(account_id)
        except (AccountNotFound, InvalidTransition):
            raise Http404("no receipt: the account is unknown or not purged") from None
        response = HttpResponse(receipt.to_json(), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="receipt-{account_id}.json"'
        return response
