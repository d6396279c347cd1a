"""Integrations with other engines. Each submodule needs its extra and is imported only when asked
for: ``account_lifecycle.contrib.celery`` needs ``pip install 'account-lifecycle[celery]'``."""
