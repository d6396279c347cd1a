#!/usr/bin/env python3
"""The example project's manage.py: ``python manage.py migrate && python manage.py seed_demo &&
python manage.py runserver``."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "allclients_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
