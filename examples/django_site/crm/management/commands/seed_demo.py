"""``manage.py seed_demo``: a customer (``ann``) with an open account and some data, and a
support agent (``sam``, staff) who may restore accounts and place holds in the admin."""

from django.contrib.auth.models import Permission, User
from django.core.management.base import BaseCommand
from django.db import transaction

from account_lifecycle.contrib.django import lifecycle
from crm.models import Appointment, Contact, Item


class Command(BaseCommand):
    help = "Create the demo customer and support agent, and open the customer's account."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="demo-password")

    def handle(self, *args, password, **options):
        with transaction.atomic():
            ann = User.objects.create_user("ann", password=password)
            sam = User.objects.create_user("sam", password=password, is_staff=True)
            sam.user_permissions.add(
                *Permission.objects.filter(
                    content_type__app_label="account_lifecycle",
                    codename__in=["view_accountrow", "restore_account", "hold_account"],
                )
            )
            account_id = f"acct-{ann.pk}"
            lifecycle().open(account_id, owner=str(ann.pk))
            Contact.objects.bulk_create(Contact(account_id=account_id, name=f"Contact {n}") for n in range(3))
            Appointment.objects.create(account_id=account_id, title="Kick-off")
            for category in ("todos", "email_templates", "autoresponders", "history", "backups"):
                Item.objects.create(account_id=account_id, kind=category, text="...")
        self.stdout.write(f"customer ann (account {account_id}) and support agent sam created")
