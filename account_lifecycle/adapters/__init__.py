"""Shipped stores. ``PostgresStore`` is imported lazily: it needs the ``postgres`` extra."""
