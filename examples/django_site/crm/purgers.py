"""Purgers over the ORM: each deletes one category of an account's rows, in batches."""

from django.db import transaction

from account_lifecycle import PurgeResult
from crm.models import Appointment, Contact, Item


class DeleteRows:
    """Erases *category*: deletes the account's rows of *model* (filtered by *match*), *batch*
    rows per transaction, so a large account never holds one long lock. Idempotent: run again
    after a crash, it deletes what is left."""

    def __init__(self, category, model, *, batch=500, **match):
        self.category = category
        self.model = model
        self.batch = batch
        self.match = match

    def purge(self, account_id, context):
        rows = self.model.objects.filter(account_id=account_id, **self.match)
        erased = 0
        while True:
            with transaction.atomic():
                ids = list(rows.values_list("pk", flat=True)[: self.batch])
                if not ids:
                    return PurgeResult(items=erased)
                deleted, _ = self.model.objects.filter(pk__in=ids).delete()
            erased += deleted


PURGERS = [
    DeleteRows("contacts", Contact),
    DeleteRows("appointments", Appointment),
    *(
        DeleteRows(name, Item, kind=name)
        for name in ("todos", "email_templates", "autoresponders", "history", "backups")
    ),
]
