"""A CRM's data, per account: what the ALLCLIENTS categories erase."""

from django.db import models


class Contact(models.Model):
    """A customer's contact (category ``contacts``)."""

    account_id = models.CharField(max_length=64, db_index=True)
    name = models.CharField(max_length=200)


class Appointment(models.Model):
    """A booked appointment (category ``appointments``)."""

    account_id = models.CharField(max_length=64, db_index=True)
    title = models.CharField(max_length=200)


class Item(models.Model):
    """Everything else, by kind: ``todos``, ``email_templates``, ``autoresponders``,
    ``history`` and ``backups``."""

    account_id = models.CharField(max_length=64, db_index=True)
    kind = models.CharField(max_length=32)
    text = models.TextField(blank=True)
